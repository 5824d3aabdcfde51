"""Session fixtures shared by every test package.

``stack``: the real embedded servers (Tansu, osmem, PostgreSQL + Alerta), started once per session on
free loopback ports with a state dir under pytest's tmp dir, stopped at the end. Set
``FINPULSE_TEST_STACK_ENV`` to a ``stack.env`` written by ``finpulse stack up`` to use an already
running stack instead (it is then neither started nor stopped).
``unique_name``: a unique lowercase id per test, valid as a topic, index, prefix or group name.
``es_client``: a synchronous Elasticsearch client from the factory, pointed at the stack.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from finpulse.settings import ModelSettings, Settings, load_settings

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from finpulse.infra.stack.manager import Stack

logger = logging.getLogger(__name__)

#: Settings that default to the user's own files: the suite points each at its own temporary dir instead.
ISOLATED_PATHS = {
    "FINPULSE_MODEL__ARTIFACTS_DIR": "artifacts",
    "FINPULSE_STREAM__DATA_DIR": "faust",
    "FINPULSE_STACK__STATE_DIR": "stack",
    "FINPULSE_SCRAPE__STATE_FILE": "scrape-state.json",
}


def pytest_configure(config: pytest.Config) -> None:
    """Tests never read or write the user's ``artifacts/``, ``.finpulse/`` or env file: inherited ``FINPULSE_``
    variables are dropped (``FINPULSE_TEST_STACK_ENV`` excepted) and the settings that name the user's files point
    into a temporary dir of this run, the env file at an empty one. Child processes inherit the same."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="finpulse-tests-"))
    for name in [n for n in os.environ if n.startswith("FINPULSE_") and n != "FINPULSE_TEST_STACK_ENV"]:
        del os.environ[name]
    env_file = home / "empty.env"
    env_file.write_text("")
    os.environ["FINPULSE_ENV_FILE"] = str(env_file)
    for name, leaf in ISOLATED_PATHS.items():
        os.environ[name] = str(home / leaf)

# Short consumer-group timings: Tansu completes a group join only after about half the session timeout.
TEST_KAFKA = {"session_timeout_s": 6.0, "heartbeat_interval_s": 1.0, "request_timeout_s": 15.0}


@dataclass(frozen=True)
class StackHandle:
    """The running embedded stack as tests see it."""

    settings: Settings
    kafka_bootstrap: str
    es_url: str
    alerta_endpoint: str
    alerta_api_key: str
    env_file: Path
    state_dir: Path | None  # None when the stack came from FINPULSE_TEST_STACK_ENV
    manager: Stack | None


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def _handle(env_file: Path, manager: Stack | None) -> StackHandle:
    # Explicit overrides, so FINPULSE_ variables in the developer's shell cannot point tests elsewhere.
    env = _read_env_file(env_file)
    settings = load_settings(
        env_file,
        kafka={**TEST_KAFKA, "bootstrap_servers": env["FINPULSE_KAFKA__BOOTSTRAP_SERVERS"]},
        elasticsearch={"url": env["FINPULSE_ELASTICSEARCH__URL"],
                       "compat_json": env.get("FINPULSE_ELASTICSEARCH__COMPAT_JSON", "false").lower() == "true"},
        alerta={"endpoint": env["FINPULSE_ALERTA__ENDPOINT"], "api_key": env.get("FINPULSE_ALERTA__API_KEY")},
        stack=manager.settings.model_dump() if manager else {},
    )
    key = settings.alerta.api_key.get_secret_value() if settings.alerta.api_key else ""
    return StackHandle(
        settings=settings,
        kafka_bootstrap=settings.kafka.bootstrap_servers,
        es_url=settings.elasticsearch.url,
        alerta_endpoint=settings.alerta.endpoint,
        alerta_api_key=key,
        env_file=env_file,
        state_dir=manager.state_dir if manager else None,
        manager=manager,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """Every embedded server, started once for the session (or the one named by FINPULSE_TEST_STACK_ENV)."""
    external = os.environ.get("FINPULSE_TEST_STACK_ENV")
    if external:
        yield _handle(Path(external), None)
        return
    from finpulse.infra.stack.exceptions import PortInUseError
    from finpulse.infra.stack.manager import Stack, settings_on_free_ports

    state_dir = tmp_path_factory.mktemp("stack")
    for attempt in range(3):
        manager = Stack(settings_on_free_ports(state_dir, start_timeout_s=90.0))
        try:
            manager.up()
            break
        except PortInUseError as exc:  # another process took a port between the probe and the start
            logger.warning("stack start attempt %d: %s", attempt + 1, exc)
            if attempt == 2:
                raise
    try:
        yield _handle(manager.env_file, manager)
    finally:
        manager.down()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A unique lowercase id for this test (letters, digits, dashes; starts with a letter)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:24].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def es_client(stack: StackHandle) -> Iterator[Elasticsearch]:
    """A synchronous client built by ``make_es_client`` for the stack."""
    from finpulse.streams.sinks.elasticsearch import make_es_client

    client = make_es_client(stack.settings.elasticsearch)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT, exported (fp32 + int8 + tokenizer + card) once per session: enough for a worker to start."""
    from finpulse.export.testing import export_tiny

    return export_tiny(tmp_path_factory.mktemp("tiny-export"))


@pytest.fixture(scope="session")
def tiny_sentiment_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT *trained* on keyword-labelled synthetic headlines and exported like the real model.

    It labels "… plunges / slumps / misses estimates …" negative and "… schedules call …" neutral, so
    pipeline tests can produce a negative burst on purpose. Built once per session (about half a minute).
    """
    from finpulse.export.config import ExportConfig
    from finpulse.export.sentiment import export_sentiment
    from finpulse.export.testing import build_tiny_bert, synthetic_examples
    from finpulse.models.train_sentiment import TrainConfig, train_sentiment

    work = tmp_path_factory.mktemp("tiny-trained")
    config = TrainConfig(base=str(build_tiny_bert(work / "base")), epochs=4, time_budget_s=180, batch_size=16,
                         lr=3e-3, warmup_ratio=0.1, max_length=32, evals_per_epoch=1, patience=5, progress=False, seed=0)
    trained = train_sentiment(config, work / "train", train_examples=synthetic_examples(600, seed=1),
                              test_sets={"syn": synthetic_examples(60, seed=2)})
    card = export_sentiment(
        trained.model_dir, work / "onnx", ModelSettings(max_length=32), [e.text for e in synthetic_examples(60, seed=3)],
        eval_sets={"syn": synthetic_examples(60, seed=2)}, config=ExportConfig(name="sentiment", min_int8_agreement=0.8),
        base_model="tiny-trained-bert",
    )
    return card.parent


def with_overrides(settings: Settings, **groups: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with some fields of some groups replaced (validated again)."""
    data = settings.model_dump()
    for group, values in groups.items():
        data[group].update(values)
    return Settings.model_validate(data)


@pytest.fixture
def pipeline_settings(stack: StackHandle, unique_name: str, tiny_sentiment_model: Path) -> Settings:
    """Settings of one test's pipeline: its own topics, group, indices and ports, the tiny trained model,
    a 60 s spike window and a bearer token for the worker's recommendations view."""
    from finpulse.infra.stack.process import free_port

    return with_overrides(
        stack.settings,
        kafka={"topic_prefix": f"{unique_name}.", "consumer_group": unique_name},
        elasticsearch={"index_prefix": unique_name},
        model={"sentiment_dir": tiny_sentiment_model, "sentiment_variant": "fp32", "intra_op_threads": 1},
        stream={"web_port": free_port(), "metrics_port": free_port(), "batch_wait_s": 0.05, "index_wait_s": 0.1},
        spike={"window_s": 60.0, "min_count": 5, "cooldown_s": 0.0, "alpha": 0.001, "prior_share": 0.1},
        alerts={"sinks": ["alerta", "log"]},
        recommend={"view_token": "pipeline-view-token"},  # GET /v1/users/{id}/recommendations needs one
    )


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts dir laid out as the CLI expects: sentiment/onnx holds an exported tiny model."""
    from finpulse.export.testing import export_tiny

    root = tmp_path_factory.mktemp("artifacts")
    export_tiny(root / "sentiment")
    return root
