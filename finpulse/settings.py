"""Typed settings of finpulse.

One :class:`Settings` object is built in the CLI entry point (:func:`load_settings`) and passed
down to every part; nothing reads the environment at import time. Every field can be set by an
environment variable with the ``FINPULSE_`` prefix; nested groups use ``__`` as delimiter, e.g.
``FINPULSE_KAFKA__BOOTSTRAP_SERVERS``. Values can also come from an env file (``FINPULSE_ENV_FILE``,
default ``.finpulse/stack.env``, which ``finpulse stack up`` writes), real environment variables win.
"""

from __future__ import annotations

import json
import os
import re
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NestedSecretsSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from finpulse.exceptions import SettingsError
from finpulse.settings_groups import (  # noqa: F401 - the groups are imported from here by every room
    DEFAULT_ENV_FILE,
    DEFAULT_STATE_DIR,
    ENV_PREFIX,
    NESTED_DELIMITER,
    WORKER_ROLES,
    AlertaSettings,
    AlertSettings,
    ElasticsearchSettings,
    HttpUrl,
    KafkaSecurityProtocol,
    KafkaSettings,
    KibanaSettings,
    ModelSettings,
    RecommendSettings,
    ScrapeSettings,
    SpikeSettings,
    StackSettings,
    StreamSettings,
    WorkerRole,
)


class Settings(BaseSettings):
    """Every setting of finpulse."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        secrets_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secret files named like nested variables (FINPULSE_KAFKA__SASL_PASSWORD) fill nested groups too.
        return init_settings, env_settings, dotenv_settings, NestedSecretsSettingsSource(file_secret_settings)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_json: bool = Field(False, description="Write logs as JSON lines.")
    pseudonym_key: SecretStr = Field(
        SecretStr("change-me-in-production"),
        description="Key of the keyed hash that pseudonymises user ids before they reach an index.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # type: ignore[arg-type]
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)  # type: ignore[arg-type]
    alerta: AlertaSettings = Field(default_factory=AlertaSettings)  # type: ignore[arg-type]
    kibana: KibanaSettings = Field(default_factory=KibanaSettings)  # type: ignore[arg-type]
    model: ModelSettings = Field(default_factory=ModelSettings)  # type: ignore[arg-type]
    stream: StreamSettings = Field(default_factory=StreamSettings)  # type: ignore[arg-type]
    spike: SpikeSettings = Field(default_factory=SpikeSettings)  # type: ignore[arg-type]
    alerts: AlertSettings = Field(default_factory=AlertSettings)  # type: ignore[arg-type]
    stack: StackSettings = Field(default_factory=StackSettings)  # type: ignore[arg-type]
    scrape: ScrapeSettings = Field(default_factory=ScrapeSettings)  # type: ignore[arg-type]
    recommend: RecommendSettings = Field(default_factory=RecommendSettings)  # type: ignore[arg-type]

    def worker_app_id(self) -> str:
        """The worker's Faust app id (its consumer group, and the prefix of its tables' changelog topics):
        ``kafka.consumer_group``, followed by the roles when the worker runs only some of them, so that workers
        of different roles never share a group (their subscriptions and tables differ)."""
        roles = [role for role in WORKER_ROLES if role in self.stream.roles]
        if len(roles) == len(WORKER_ROLES):
            return self.kafka.consumer_group
        return f"{self.kafka.consumer_group}-{'-'.join(roles)}"

    def recommend_model_path(self) -> Path:
        """The recommendation ONNX artefact dir: ``recommend.model_dir`` or ``<artifacts_dir>/recommend/onnx``."""
        return self.recommend.model_dir or self.model.artifacts_dir / "recommend" / "onnx"


PSEUDONYM_KEY_MIN_BYTES = 32
_PLACEHOLDER = "change-me"


def check_pseudonym_key(key: SecretStr) -> None:
    """Refuse a pseudonym key anyone could know or guess: the default, a ``change-me`` placeholder, or one shorter
    than :data:`PSEUDONYM_KEY_MIN_BYTES` bytes (with the key, a user id's pseudonym can be recomputed). The worker,
    the clicks API and the dashboard call this before they start; ``finpulse stack up`` writes a random key."""
    value = key.get_secret_value()
    default = Settings.model_fields["pseudonym_key"].default.get_secret_value()
    size = len(value.encode("utf-8"))
    if value == default:
        problem = "is the built-in default"
    elif _PLACEHOLDER in value.lower():
        problem = f"contains the placeholder {_PLACEHOLDER!r}"
    elif size < PSEUDONYM_KEY_MIN_BYTES:
        problem = f"is {size} bytes long, shorter than {PSEUDONYM_KEY_MIN_BYTES}"
    else:
        return
    raise SettingsError(
        f"{ENV_PREFIX}PSEUDONYM_KEY {problem}: set a random key of at least {PSEUDONYM_KEY_MIN_BYTES} bytes, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(32))' (`finpulse stack up` writes one into its env file)"
    )


def env_var_name(loc: tuple[Any, ...]) -> str:
    """The environment variable behind a validation error location."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ENV_PREFIX + NESTED_DELIMITER.join(parts).upper()


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once, turning validation errors into one :class:`SettingsError`.

    ``env_file`` defaults to ``$FINPULSE_ENV_FILE`` or ``.finpulse/stack.env`` when it exists. Secrets can also come
    from files, one per setting, as Docker and Kubernetes mount them: ``$FINPULSE_SECRETS_DIR`` names the folder, and a
    file named like the variable (``FINPULSE_KAFKA__SASL_PASSWORD``) holds its value. Real environment variables win
    over the env file, and the env file over secret files.
    """
    secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR: {secrets_dir} is not a directory")
    if env_file is None:
        named = os.environ.get(f"{ENV_PREFIX}ENV_FILE")
        env_file = Path(named) if named else DEFAULT_ENV_FILE
        if named and not env_file.is_file():
            raise SettingsError(f"{ENV_PREFIX}ENV_FILE: {env_file} does not exist")
    env_files = (env_file,) if env_file.is_file() else ()
    try:
        return Settings(_env_file=env_files or None, _secrets_dir=secrets_dir or None,  # type: ignore[call-arg]
                        **overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = env_var_name(err["loc"])
            if err["type"] == "missing":
                problems.append(f"{name}: required")
            else:
                problems.append(f"{name}: {err['msg']} (got {_shown_input(err['loc'], err.get('input'))})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    except PydanticSettingsError as exc:  # a list or group value that is not valid JSON
        match = re.search(r'field "([^"]+)"', str(exc))
        group = ENV_PREFIX + (match.group(1).upper() if match else "*")
        raise SettingsError(
            f"{group} (or one of its {NESTED_DELIMITER} variables): not valid JSON (lists and groups are written as JSON)"
        ) from None


_SECRET_WORDS = ("password", "key", "token", "secret")


def _is_secret(loc: tuple[Any, ...]) -> bool:
    """Whether a validation error location is a secret: a SecretStr field, or a name that sounds like one."""
    names = [str(p).lower() for p in loc if not isinstance(p, int)]
    if any(word in name for name in names for word in _SECRET_WORDS):
        return True
    model: type[BaseModel] = Settings
    for name in names:
        field = model.model_fields.get(name)
        if field is None:
            return False
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
            continue
        return "SecretStr" in repr(field.annotation)
    return False


def _shown_input(loc: tuple[Any, ...], value: Any) -> str:
    """The bad input as the error shows it: never a secret, never a whole group (it may hold secrets)."""
    if _is_secret(loc):
        return "a secret value, not shown"
    if isinstance(value, dict | BaseModel):
        return "a group of values"
    return repr(value)


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every leaf setting; used to write docs/configuration.md."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, prefix + name.upper() + NESTED_DELIMITER)
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                shown = "(secret)"
            elif default is None:
                shown = ""
            elif isinstance(default, list):
                shown = json.dumps(default, default=str)  # lists are written as JSON in the environment
            else:
                shown = str(default.value if isinstance(default, Enum) else default)
            rows.append((prefix + name.upper(), shown, field.description or ""))

    walk(Settings, ENV_PREFIX)
    return rows


def settings_to_env(settings: Settings, *, mask: str | None = None) -> dict[str, str]:
    """The ``FINPULSE_*`` environment that rebuilds ``settings`` in another process.

    Secrets are included in clear unless ``mask`` is given, which then stands in for each of them.
    """
    env: dict[str, str] = {}

    def value_of(value: Any) -> str:
        if isinstance(value, SecretStr):
            return mask if mask is not None else value.get_secret_value()
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, list | dict):
            return json.dumps(value, default=str)
        return str(value)

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                walk(value, prefix + name.upper() + NESTED_DELIMITER)
            elif value is not None:
                env[prefix + name.upper()] = value_of(value)

    walk(settings, ENV_PREFIX)
    return env


def child_process_env(settings: Settings) -> dict[str, str]:
    """This process's environment for a finpulse child process that must run with ``settings``: inherited
    ``FINPULSE_*`` variables dropped (none may override them), ``settings`` written in their place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(settings_to_env(settings))
    return env
