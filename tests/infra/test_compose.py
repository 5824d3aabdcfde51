"""The production stack: docker-compose.yml against the Compose spec, its finpulse commands against the CLI.

A renamed or removed CLI command fails here before it breaks a deployment. Services whose command has not
landed yet are marked xfail(strict=True): the test flips to XPASS (a failure) once the command exists, so the
mark gets removed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "infra" / "Dockerfile"

# Every service built from infra/Dockerfile and the CLI command it runs.
FINPULSE_SERVICES = {
    "topics": ["topics", "create"],
    "worker": ["worker", "--role", "news", "--role", "alerts"],
    "recommender": ["worker", "--role", "recommend"],
    "scraper": ["scrape"],
    "clicks-api": ["clicks-api"],
    "kibana-import": ["kibana", "import"],
}
ONE_SHOT = {"topics", "elasticsearch-setup", "kibana-import"}

SERVICE_CASES = [
    pytest.param("topics", id="topics"),
    pytest.param("worker", id="worker"),
    pytest.param("recommender", id="recommender"),
    pytest.param("scraper", id="scraper"),
    pytest.param("clicks-api", id="clicks-api"),
    pytest.param("kibana-import", id="kibana-import"),
]

_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"not NAME=value: {line!r}"
        values[name.strip()] = value.strip().strip("'\"")
    return values


def resolve_command(tokens: list[str]) -> None:
    """Walk the typer app's click groups along ``tokens``; fail unless they name a leaf command whose
    options parse."""
    from finpulse.cli import app

    command: Any = typer.main.get_command(app)
    path = ["finpulse"]
    rest = list(tokens)
    while rest and not rest[0].startswith("-") and hasattr(command, "commands"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            raise AssertionError(f"`{' '.join(path)}` has no command {name!r} (has: {sorted(command.commands)})")
        command, path = sub, [*path, name]
    if hasattr(command, "commands"):
        raise AssertionError(f"`{' '.join(path)}` is a group, not a command (needs one of {sorted(command.commands)})")
    command.make_context(" ".join(path), rest)  # raises a usage error on an unknown option or argument


# ---------------------------------------------------------------------------------------------------------------------
# the compose file


def test_compose_file_matches_the_compose_spec() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_finpulse_service_is_listed(compose: dict[str, Any]) -> None:
    built = {
        name
        for name, service in compose["services"].items()
        if isinstance(service.get("build"), dict) and service["build"].get("dockerfile") == "infra/Dockerfile"
    }
    assert built == set(FINPULSE_SERVICES)
    for name, tokens in FINPULSE_SERVICES.items():
        assert compose["services"][name]["command"] == tokens, name


@pytest.mark.parametrize("service", SERVICE_CASES)
def test_service_command_is_a_real_cli_command(compose: dict[str, Any], service: str) -> None:
    resolve_command(list(compose["services"][service]["command"]))


def test_command_resolution_catches_renames() -> None:
    resolve_command(["config", "show"])
    with pytest.raises(AssertionError, match="no command"):
        resolve_command(["no-such-command"])
    with pytest.raises(AssertionError, match="is a group"):
        resolve_command(["config"])
    with pytest.raises(Exception, match="--nope"):
        resolve_command(["config", "show", "--nope"])


def test_worker_reserves_a_gpu_and_builds_the_gpu_extra(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert worker["build"]["args"]["EXTRA"] == "gpu"
    for name in set(FINPULSE_SERVICES) - {"worker"}:
        assert compose["services"][name]["build"]["args"]["EXTRA"] == "cpu", name


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dep, spec in depends.items():
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, (name, dep)
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no health check"
            else:
                assert dep in ONE_SHOT, f"{name} waits for {dep} to complete, but it is not a one-shot job"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
    for name, service in services.items():
        if name not in ONE_SHOT and name != "scraper":
            assert "healthcheck" in service, f"{name} has no health check"


def test_stateful_servers_keep_data_in_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    wanted = {"kafka": "/var/lib/kafka/data", "elasticsearch": "/usr/share/elasticsearch/data",
              "postgres": "/var/lib/postgresql/data"}
    for name, path in wanted.items():
        mounts = [str(v) for v in services[name]["volumes"]]
        volume = next(m.split(":")[0] for m in mounts if m.split(":")[1] == path)
        assert volume in compose["volumes"], name


def test_servers_are_configured_securely(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    es = services["elasticsearch"]["environment"]
    assert es["xpack.security.enabled"] == "true"
    assert es["ELASTIC_PASSWORD"].startswith("${ELASTIC_PASSWORD")
    assert re.match(r"docker\.elastic\.co/elasticsearch/elasticsearch:\$\{ELASTIC_VERSION:-8\.", services["elasticsearch"]["image"])
    kibana = services["kibana"]["environment"]
    assert kibana["ELASTICSEARCH_USERNAME"] == "kibana_system"
    alerta = services["alerta"]
    assert alerta["image"].startswith("alerta/alerta-web:")
    assert alerta["environment"]["AUTH_REQUIRED"] == "True"
    assert alerta["environment"]["ADMIN_KEY"].startswith("${ALERTA_ADMIN_KEY")


def test_finpulse_environment_names_real_settings(compose: dict[str, Any]) -> None:
    from finpulse.settings import settings_table

    known = {name for name, _, _ in settings_table()}
    for name in FINPULSE_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = {var for var in env if var.startswith("FINPULSE_")} - known
        assert not unknown, f"{name}: not settings: {sorted(unknown)}"
        if name in KAFKA_USERS:
            assert env["FINPULSE_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_env_example_covers_every_variable_without_real_secrets() -> None:
    used = set(_INTERPOLATION.findall(COMPOSE.read_text(encoding="utf-8")))
    example = env_example()
    assert used - set(example) == set(), "variables missing from .env.example"
    assert set(example) - used == set(), "variables in .env.example that docker-compose.yml does not use"
    for name, value in example.items():
        if re.search(r"PASSWORD|SECRET|_KEY$", name):
            assert value.startswith("change-me"), f"{name} must be a change-me placeholder"


def test_dockerfile_is_multi_stage_slim_non_root_with_extra() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^ARG EXTRA=cpu$", text, flags=re.M)
    assert '".[${EXTRA}]"' in text
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and not users[-1].startswith(("root", "0"))

    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(dep.startswith("onnxruntime") and "gpu" not in dep for dep in extras["cpu"])
    assert any(dep.startswith("onnxruntime-gpu") for dep in extras["gpu"])


# ---------------------------------------------------------------------------------------------------------------------
# credentials: each service gets only the secrets it needs; Kafka authenticates every client with SCRAM

#: Every secret of .env (a name with PASSWORD, SECRET, TOKEN or ending in _KEY) each service may see, and nothing else.
SERVICE_SECRETS: dict[str, set[str]] = {
    "kafka": {"KAFKA_ADMIN_PASSWORD", "KAFKA_TOPICS_PASSWORD", "KAFKA_WORKER_PASSWORD", "KAFKA_RECOMMENDER_PASSWORD",
              "KAFKA_SCRAPER_PASSWORD", "KAFKA_CLICKS_API_PASSWORD"},  # the SCRAM credential store
    "elasticsearch": {"ELASTIC_PASSWORD"},
    "elasticsearch-setup": {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "ES_FINPULSE_PASSWORD", "ES_KIBANA_IMPORT_PASSWORD"},
    "kibana": {"KIBANA_PASSWORD", "KIBANA_ENCRYPTION_KEY"},
    "postgres": {"POSTGRES_PASSWORD"},
    "alerta": {"POSTGRES_PASSWORD", "ALERTA_SECRET_KEY", "ALERTA_ADMIN_PASSWORD", "ALERTA_ADMIN_KEY"},
    "topics": {"KAFKA_TOPICS_PASSWORD"},
    # the alerts role: the only finpulse service with the Alerta key
    "worker": {"KAFKA_WORKER_PASSWORD", "ES_FINPULSE_PASSWORD", "ALERTA_ADMIN_KEY", "PSEUDONYM_KEY"},
    "recommender": {"KAFKA_RECOMMENDER_PASSWORD", "ES_FINPULSE_PASSWORD", "PSEUDONYM_KEY", "RECOMMEND_VIEW_TOKEN"},
    "scraper": {"KAFKA_SCRAPER_PASSWORD"},  # Kafka, nothing else
    "clicks-api": {"KAFKA_CLICKS_API_PASSWORD", "CLICKS_API_TOKEN", "PSEUDONYM_KEY"},
    "kibana-import": {"ES_KIBANA_IMPORT_PASSWORD"},
}
#: The finpulse services that talk to Kafka and the SCRAM user each one logs in as.
KAFKA_USERS = {"topics": "finpulse-topics", "worker": "finpulse-worker", "recommender": "finpulse-recommender",
               "scraper": "finpulse-scraper", "clicks-api": "finpulse-clicks-api"}
_SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _secrets_of(service: dict[str, Any]) -> set[str]:
    """The .env secrets a service's definition interpolates, anywhere in it (environment, command, health check)."""
    return {var for text in _strings(service) for var in _INTERPOLATION.findall(text) if _SECRET.search(var)}


def test_each_service_gets_only_its_secrets(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(SERVICE_SECRETS)
    for name, service in services.items():
        assert _secrets_of(service) == SERVICE_SECRETS[name], name
    every = set().union(*SERVICE_SECRETS.values())
    assert every == {name for name in env_example() if _SECRET.search(name)}, "a secret of .env.example no service uses"


def test_the_secret_check_sees_a_secret_wherever_it_is_written() -> None:
    leaky = {"environment": {"A": "x"}, "command": ["sh", "-c", "echo ${ALERTA_ADMIN_KEY:?set it}"],
             "healthcheck": {"test": ["CMD-SHELL", "curl -u u:$${NOT_INTERPOLATED} ${ES_FINPULSE_PASSWORD}"]}}
    assert _secrets_of(leaky) == {"ALERTA_ADMIN_KEY", "ES_FINPULSE_PASSWORD"}


def test_kafka_listeners_use_sasl_scram(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    assert set(protocols) == listeners
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    for listener, protocol in protocols.items():
        if listener != controller:
            assert protocol in {"SASL_PLAINTEXT", "SASL_SSL"}, listener
            jaas = env[f"KAFKA_LISTENER_NAME_{listener}_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
            assert jaas.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required"), listener
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]].startswith("SASL_")
    # The controller listener (PLAINTEXT: SCRAM cannot guard it) is never published.
    controller_port = next(item.rsplit(":", 1)[1] for item in env["KAFKA_LISTENERS"].split(",")
                           if item.startswith(f"{controller}://"))
    assert all(not str(port).endswith(f":{controller_port}") for port in kafka.get("ports", []))
    # No variable the image turns into a broker property (KAFKA_*) carries a password in clear but the listeners' JAAS.
    assert not [var for var in env if var.startswith("KAFKA_") and _SECRET.search(var)]
    script = " ".join(_strings(kafka["command"]))
    for user in ["admin", *KAFKA_USERS.values()]:
        assert f"SCRAM-SHA-512=[name={user}," in script, f"SCRAM user {user} is not created"


def test_finpulse_services_authenticate_to_kafka_each_as_itself(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, user in KAFKA_USERS.items():
        env = services[name]["environment"]
        assert env["FINPULSE_KAFKA__SECURITY_PROTOCOL"] in {"SASL_PLAINTEXT", "SASL_SSL"}, name
        assert env["FINPULSE_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["FINPULSE_KAFKA__SASL_USERNAME"] == user, name
        password = _INTERPOLATION.findall(env["FINPULSE_KAFKA__SASL_PASSWORD"])
        assert password == [f"KAFKA_{name.upper().replace('-', '_')}_PASSWORD"], name
    for name in set(FINPULSE_SERVICES) - set(KAFKA_USERS):
        assert not [var for var in services[name]["environment"] if var.startswith("FINPULSE_KAFKA__")], name


@pytest.mark.parametrize("service", SERVICE_CASES)
def test_each_finpulse_service_environment_is_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The service's FINPULSE_ variables, with .env.example's values put in, build the settings."""
    from finpulse.settings import load_settings

    example = env_example()

    def interpolate(text: str) -> str:
        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}", lambda m: example.get(m.group(1), ""), text)

    for name in [n for n in os.environ if n.startswith("FINPULSE_")]:
        monkeypatch.delenv(name)
    for name, value in compose["services"][service]["environment"].items():
        monkeypatch.setenv(name, interpolate(str(value)))
    (tmp_path / "empty.env").write_text("")
    load_settings(tmp_path / "empty.env")
