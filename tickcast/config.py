"""The one configuration object: every setting is a ``TICKCAST_*`` environment variable.

Values are read from the environment and from a ``.env`` file in the working directory.
Every setting has an embedded default so that a fresh machine runs the local stack; the JWT
secret has a public development default that :class:`Settings` refuses outside
``env=development`` and for an API bound beyond loopback. Secrets have at least 32 bytes.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tickcast.errors import ConfigError
from tickcast.redaction import redact

DEV_SECRET = "tickcast-development-secret-change-me"
#: Shortest accepted HS256 secret or read token (RFC 7518 §3.2: a key as long as the hash).
MIN_SECRET_BYTES = 32
REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """tickcast configuration (``TICKCAST_<FIELD>`` in upper case sets ``<field>``)."""

    model_config = SettingsConfigDict(
        env_prefix="TICKCAST_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = Field(
        "development", description="Deployment environment; production refuses default secrets."
    )
    data_dir: Path = Field(
        REPO_ROOT / ".tickcast", description="Where embedded services keep their data and logs."
    )
    log_level: str = Field("INFO", description="structlog level: DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(True, description="JSON logs (services) or console logs (people).")
    trace_tick_ratio: float = Field(
        0.001, ge=0, le=1, description="Share of published ticks that start a trace when "
        "tracing is on (OTEL_* variables, tickcast/tracing.py); 0 = none, 1 = all.",
    )  # fmt: skip

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    kafka_version: str = Field("3.9.2", description="Apache Kafka version the local stack runs.")
    kafka_home: Path = Field(
        REPO_ROOT / "infra" / "kafka", description="Folder with the broker's pom and scripts."
    )
    topic_prefix: str = Field("", description="Prefix of every topic name (namespaces).")
    partitions: int = Field(4, ge=1, description="Partitions of every per-symbol topic.")
    consumer_group: str = Field("tickcast", description="Consumer group / Faust app id.")
    linger_ms: int = Field(5, ge=0, description="Producer linger: the latency floor knob.")
    batch_max_events: int = Field(2000, ge=1, description="Most events in one micro-batch.")
    batch_within_s: float = Field(
        0.01, gt=0, description="Longest wait to fill a micro-batch (latency vs throughput)."
    )
    checkpoint_interval_s: float = Field(
        1.0, ge=0, description="State checkpoint (and offset commit) interval of a stage."
    )
    worker_slow_turn_ms: float = Field(
        100.0, ge=0, description="Log a direct-runner loop turn this long (ms) with its phases; "
        "0 = never.",
    )  # fmt: skip

    worker_retry_max_s: float = Field(
        5.0, gt=0, description="Longest backoff (s) between retries of a dependency that is down."
    )
    worker_session_timeout_ms: int = Field(
        6000, ge=1000, description="Consumer-group session time-out: how long a dead worker "
        "keeps its partitions (the broker's group.min.session.timeout.ms is 6000).",
    )  # fmt: skip
    worker_heartbeat_ms: int = Field(
        1500, ge=100, description="Consumer-group heartbeat interval (at most a third of the "
        "session time-out).",
    )  # fmt: skip
    worker_max_poll_interval_ms: int = Field(
        120_000, ge=10_000, description="Longest gap between polls before a worker is "
        "considered stuck and leaves the group.",
    )  # fmt: skip
    worker_instance_id: str = Field(
        "", description="Static group membership id (e.g. the StatefulSet pod name): a worker "
        "restarted within the session time-out keeps its partitions without a rebalance.",
    )  # fmt: skip

    # Feature set the worker computes (docs/features.md, indicators/feature_sets.py)
    feature_set: str = Field(
        "", description="Named feature set the worker computes (classic, alpha158, "
        "classic+alpha158, each also NAME+side with the side columns); empty: the union of "
        "the registered models' sets at start, else classic. Fixed for the run: a model "
        "needing another set is refused until a restart.",
    )  # fmt: skip
    alpha158_engine: Literal["per_symbol", "vector"] = Field(
        "vector", description="How the worker updates Alpha158: vector (every tick of a "
        "micro-batch in one numpy call, each from its symbol's last 61 bars) or per_symbol "
        "(the same call on one tick at a time: ~40x the CPU per tick). Same values bit for bit.",
    )  # fmt: skip
    classic_engine: Literal["per_symbol", "vector"] = Field(
        "vector", description="How the worker updates the classic indicators of a warm symbol: "
        "vector (every symbol a row of numpy columns, a micro-batch applied in rounds: the k-th "
        "tick of every symbol at once; a symbol with more ticks than the rounds hold goes per "
        "symbol for that batch) or per_symbol (one Python indicator per symbol, tick by tick). "
        "Same values bit for bit, same snapshots.",
    )  # fmt: skip

    # Side streams (docs/side_streams.md)
    side_features: bool = Field(
        False, description="Append the side features (macro, news sentiment, sector returns) "
        "to the worker's feature vector; they change the feature-set version.",
    )  # fmt: skip
    side_macro_series: str = Field(
        "realgdp,unemp,infl,tbilrate", description="Macro series ids the side features use "
        "(comma-separated; records of other series are ignored).",
    )  # fmt: skip
    side_news_half_life_h: float = Field(
        24.0, gt=0, description="Half-life (hours) of the decayed news sentiment."
    )
    side_sector_map: str = Field(
        "packaged", description="symbol,sector CSV for the sector features: 'packaged' (the "
        "sample map in sidestreams/data), a path, or 'none' to leave them out.",
    )  # fmt: skip
    side_max_records: int = Field(
        4096, ge=2, description="Most records an as-of table keeps (per series, per symbol)."
    )
    side_sector_sync: bool = Field(
        True, description="Sector columns from every worker's bar returns (the sector-returns "
        "topic), each row answered once final: equal to training on any number of partitions "
        "and workers (direct runner only; ~1.4x the CPU per tick, docs/side_streams.md); "
        "false: each worker's own symbols, in arrival order (exact on one partition only).",
    )  # fmt: skip
    side_sector_idle_s: float = Field(
        30.0, gt=0, description="A ticks partition whose position has not risen for this long "
        "stops holding the sector columns of the others (its rows count as not final).",
    )  # fmt: skip
    side_sector_buffer: int = Field(
        10_000, ge=1, description="Most records per ticks partition the direct runner keeps "
        "in memory while their sector columns are not final (never committed); a partition "
        "holding this many is paused until it holds fewer.",
    )  # fmt: skip
    feed_api_key: SecretStr = Field(
        SecretStr(""), description="API key of the market-data vendor of `tickcast feed` "
        "(Polygon.io or Alpha Vantage).",
    )  # fmt: skip

    # Redis
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL.")
    redis_key_prefix: str = Field("tc:", description="Prefix of every Redis key (namespaces).")
    feature_ttl_s: int = Field(7 * 86400, ge=1, description="TTL of a symbol's feature key.")

    # ClickHouse
    clickhouse_dsn: str = Field(
        "", description="chdb://<path> (embedded, default <data_dir>/clickhouse) or http(s)://..."
    )
    clickhouse_database: str = Field("tickcast", description="ClickHouse database.")
    clickhouse_read_port: int = Field(
        18124, ge=0, le=65535,
        description="Read-only ClickHouse-HTTP endpoint the chDB-owning sink serves (0: off).",
    )  # fmt: skip
    retention_prediction_years: int = Field(
        3, ge=1, description="TTL of predictions, outcomes, drift, model metrics (years)."
    )
    retention_market_data_years: int = Field(
        7, ge=1, description="TTL of ticks and features (years)."
    )
    retention_audit_years: int = Field(10, ge=1, description="TTL of model events (years).")
    sink_topics: str = Field(
        "features,predictions,outcomes,drift,model-events",
        description="Logical topics the ClickHouse sink consumes (comma-separated; +ticks).",
    )
    sink_batch_rows: int = Field(50_000, ge=1, description="Rows per ClickHouse INSERT.")
    sink_batch_interval_s: float = Field(
        1.0, gt=0, description="Longest a row waits in the sink buffer before an INSERT."
    )
    sink_max_buffer_rows: int = Field(
        200_000, ge=1, description="Buffered rows per table beyond which the sink pauses."
    )
    sink_retry_max_s: float = Field(30.0, gt=0, description="Longest backoff between retries.")
    sink_run_id: str = Field(
        "", description="run_id of predictions/outcomes without a run_id Kafka header."
    )
    drift_window_ms: int = Field(
        86_400_000, ge=1000, description="Event-time drift window (default one day)."
    )
    drift_psi_warn: float = Field(0.1, gt=0, description="PSI at or above which drift warns.")
    drift_psi_alert: float = Field(0.25, gt=0, description="PSI at or above which drift alerts.")
    drift_reference_model: str = Field(
        "",
        description="Registered model whose champion's training reference drift compares with "
        "('' = the served model, the first of TICKCAST_MODEL_NAME; 'stream' = the stream's "
        "first window only). Without a champion reference: the stream window until one exists.",
    )
    drift_reference_size: int = Field(
        2000, ge=10, description="Feature vectors in the stream reference window (fallback)."
    )
    drift_idle_partition_s: float = Field(
        30.0, gt=0, description="Seconds without records after which a features partition "
        "stops holding drift's event-time watermark back (an empty or stopped partition).",
    )  # fmt: skip

    # MLflow
    mlflow_tracking_uri: str = Field(
        "", description="MLflow tracking URI; default sqlite:///<data_dir>/mlflow/mlflow.db."
    )
    mlflow_artifact_root: str = Field(
        "", description="Artifact root for a local store; default <data_dir>/mlflow/artifacts."
    )

    # PyTorch models (training/neural.py): trained by this interpreter, scored with ONNX Runtime
    torch_python: str = Field(
        "/usr/bin/python3", description="Interpreter with torch that trains the MLP and LSTM "
        "(Debian's python3-torch; tickcast's own environment never imports torch).",
    )  # fmt: skip

    # In-stream scoring and the outcome join (agents/predictions.py)
    scoring_enabled: bool = Field(True, description="Score and join outcomes in the worker.")
    model_name: str = Field(
        "tickcast-direction-h1",
        description="Registered model(s) the worker scores (comma; the first feeds Redis).",
    )
    model_versions: str = Field(
        "",
        description=(
            "Pin the first model to these versions or aliases (comma, e.g. '3,champion'): "
            "resolved once at start, the first feeds Redis; empty follows the aliases."
        ),
    )
    model_poll_interval_s: float = Field(
        5.0, gt=0, description="Seconds between registry alias / online checkpoint polls."
    )
    online_shadow_models: str = Field(
        "river-logreg",
        description="Online challengers that shadow-score in the worker (comma, '*' = all).",
    )
    scoring_threads: int = Field(
        1, ge=0, description="Threads of one XGBoost scoring call in the worker (0 = all)."
    )
    explain_top_k: int = Field(
        5,
        ge=0,
        le=64,
        description="Top feature contributions (TreeSHAP) carried with each champion "
        "prediction (0 = off).",
    )
    explain_budget: float = Field(
        1.0,
        ge=0.0,
        description="Cap on a batch's explanation time as a multiple of the champion's "
        "scoring time (1 keeps >= 50 % of its throughput; each symbol's newest prediction is "
        "explained first); 0 = explain every champion prediction (TreeSHAP costs 40-400x a "
        "prediction).",
    )
    outcome_horizons: str = Field(
        "1,5", description="Horizons (bars) the outcome join keeps bars for (comma)."
    )
    outcome_cost_bps: float = Field(
        1.0, ge=0, description="Round-trip cost of a traded prediction in outcomes (bps)."
    )

    # Serving
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, ge=1, le=65535, description="API port.")
    jwt_secret: SecretStr = Field(SecretStr(DEV_SECRET), description="HS256 signing secret.")
    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        "HS256", description="JWT signing algorithm: HS256 (jwt_secret) or RS256 (key pair)."
    )
    jwt_private_key_path: Path | None = Field(None, description="RS256 private key (PEM).")
    jwt_public_key_path: Path | None = Field(None, description="RS256 public key (PEM).")
    jwt_issuer: str = Field("tickcast", min_length=1, description="JWT `iss` claim.")
    jwt_audience: str = Field("tickcast-api", min_length=1, description="JWT `aud` claim.")

    # Security (sink read endpoint, secrets)
    clickhouse_read_host: str = Field(
        "127.0.0.1", description="Bind address of the sink's chDB read endpoint (loopback "
        "unless a reader on another host needs it; it always requires the read token).",
    )  # fmt: skip
    clickhouse_read_token: SecretStr = Field(
        SecretStr(""), description="Bearer token of the read endpoint (32+ bytes); '' = one "
        "generated on first use into <data_dir>/clickhouse-read.token (mode 0600).",
    )  # fmt: skip
    clickhouse_read_max_rows: int = Field(
        1_000_000, ge=1, description="Most rows one query through the read endpoint returns."
    )
    clickhouse_read_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Most bytes one read-endpoint result holds."
    )
    clickhouse_read_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Longest run of one read-endpoint query (seconds)."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the worker, learner and lag-exporter "
        "metrics servers (0.0.0.0 in a pod, so Prometheus can scrape it).",
    )  # fmt: skip
    password_scrypt_n: int = Field(
        2**17, ge=2**10, le=2**20, description="scrypt cost N of new password hashes (a power "
        "of two; older hashes are upgraded at login). Below 2**17 only for tests.",
    )  # fmt: skip
    access_token_ttl_s: int = Field(900, ge=30, le=86400, description="Access token lifetime.")
    refresh_token_ttl_s: int = Field(
        14 * 86400, ge=60, description="Refresh token (and token family) lifetime."
    )
    stale_after_s: float = Field(
        60.0, gt=0, description="Prediction/feature age beyond which answers say stale."
    )
    batch_max_symbols: int = Field(200, ge=1, le=10_000, description="Symbols per batch call.")
    rate_limit_window_s: int = Field(60, ge=1, description="Sliding rate-limit window.")
    rate_limit_per_subject: int = Field(1200, ge=1, description="Requests per window per caller.")
    rate_limit_global: int = Field(120_000, ge=1, description="Requests per window, all callers.")
    rate_limit_auth: int = Field(
        20, ge=1, description="Token requests per window per client address (brute force)."
    )
    dependency_timeout_s: float = Field(
        0.25, gt=0, le=30, description="API timeout of one Redis/store call before 503."
    )
    circuit_failures: int = Field(5, ge=1, description="Failures that open a circuit breaker.")
    circuit_reset_s: float = Field(5.0, gt=0, description="Open-circuit time before a probe.")
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes of the API.")
    api_cache_ttl_s: float = Field(
        0.25, ge=0, le=60, description="API in-process cache of Redis reads (0: off)."
    )
    api_fast_path: bool = Field(
        True, description="Answer latest-prediction look-ups on the raw-ASGI fast path."
    )
    api_models: str = Field(
        "tickcast-direction-h1", description="Registered model names the API reports (comma)."
    )
    ab_enabled: bool = Field(False, description="Split API callers into champion/challenger.")
    ab_split: float = Field(0.9, ge=0, le=1, description="Share of callers on the champion arm.")

    # Validation (streams/validation.py; dead-letter reasons FUTURE_TIMESTAMP and BAD_SYMBOL)
    max_future_skew_ms: int = Field(
        300_000, ge=0,
        description="FUTURE_TIMESTAMP: a tick this far (ms) ahead of max(wall clock, the "
        "partition's latest event time).",
    )  # fmt: skip
    replay_max_gap_ms: int = Field(
        0, ge=0,
        description="Replays of history: FUTURE_TIMESTAMP also beyond the partition's latest "
        "event time + this (ms); 0 = off.",
    )  # fmt: skip
    symbol_pattern: str = Field(
        r"^[A-Z0-9.\-=^/]{1,32}$",
        description="Regular expression a symbol must fully match (else BAD_SYMBOL).",
    )

    # Security (abuse controls)
    history_cursor_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key of history cursors; '' = derived from "
        "TICKCAST_JWT_SECRET (every API replica must share it).",
    )  # fmt: skip
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDRs of reverse proxies whose X-Forwarded-For is "
        "honoured (comma-separated; default none: the peer address is the client).",
    )  # fmt: skip
    rate_limit_unauthenticated: int = Field(
        60, ge=1, description="Requests without a bearer token per window per client address."
    )
    rate_limit_failed_auth: int = Field(
        30, ge=1, description="Requests refused 401/403 per window per client address; then 429."
    )
    rate_limit_login_account: int = Field(
        10, ge=1, description="Token requests per window per account (user name or API key)."
    )
    audit_sample_per_address: int = Field(
        10, ge=1, description="Audit entries of one auth-failure kind per client address and "
        "window; the rest are summarised in one entry with their count.",
    )  # fmt: skip
    token_lifetime_slack_s: int = Field(
        5, ge=0, le=300, description="Access tokens whose exp - iat exceeds "
        "TICKCAST_ACCESS_TOKEN_TTL_S by more than this are refused.",
    )  # fmt: skip
    api_keep_alive_s: float = Field(
        5.0, gt=0, le=300, description="Idle keep-alive connection time-out (uvicorn)."
    )
    api_header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Longest wait for a request's headers (slowloris): 408."
    )
    api_body_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait for a request's whole body: closed."
    )
    api_max_header_bytes: int = Field(
        32_768, ge=4096, le=1 << 20, description="Largest request line + headers: 431."
    )
    api_limit_concurrency: int = Field(
        1024, ge=1, description="Connections + requests per API worker beyond which uvicorn "
        "answers 503.",
    )  # fmt: skip
    console_enabled: bool = Field(True, description="Serve the web console under /console.")
    console_idle_timeout_s: int = Field(
        1800, ge=60, le=86400, description="A console session ends after this long unused."
    )
    console_session_max_s: int = Field(
        12 * 3600, ge=300, le=7 * 86400, description="A console session ends after this long "
        "whatever its use (then log in again).",
    )  # fmt: skip
    console_secure_cookie: Literal["auto", "always", "never"] = Field(
        "auto", description="Secure flag of the console cookie: auto = when the request came "
        "over https (or a trusted proxy says it did).",
    )  # fmt: skip
    worker_metrics_url: str = Field(
        "http://127.0.0.1:9101/metrics", description="Where the console's stream page reads "
        "the worker's throughput, dead letters and dependency state.",
    )  # fmt: skip
    backtest_reports_dir: Path | None = Field(
        None, description="Folder of backtest reports the console lists; default "
        "<data_dir>/backtests.",
    )  # fmt: skip

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _check_trusted_proxies(cls, value: object) -> list[str]:
        if isinstance(value, str):  # comma-separated, or a JSON list
            value = json.loads(value) if value.strip().startswith("[") else value.split(",")
        items = value
        if not isinstance(items, list | tuple):
            raise ValueError("expected CIDRs, comma-separated")
        networks = []
        for item in items:
            text = str(item).strip()
            if text:
                try:
                    networks.append(str(ipaddress.ip_network(text, strict=False)))
                except ValueError:
                    raise ValueError(f"not an IP network (CIDR): {text!r}") from None
        return networks

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        if urlparse(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"expected redis://host:port/db, got {value!r}")
        return value

    @field_validator("clickhouse_dsn")
    @classmethod
    def _check_clickhouse(cls, value: str) -> str:
        if value and urlparse(value).scheme not in {"chdb", "http", "https"}:
            raise ValueError(f"expected chdb://<path> or http(s)://host:port, got {value!r}")
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.env != "development" and self.jwt_secret.get_secret_value() == DEV_SECRET:
            raise ValueError("TICKCAST_JWT_SECRET must be set outside development")
        refuse_public_dev_secret(self, self.api_host, variable="TICKCAST_API_HOST")
        return self

    @model_validator(mode="after")
    def _check_secret_lengths(self) -> Settings:
        for variable, secret, optional in (
            ("TICKCAST_JWT_SECRET", self.jwt_secret, False),
            ("TICKCAST_CLICKHOUSE_READ_TOKEN", self.clickhouse_read_token, True),
        ):
            size = len(secret.get_secret_value().encode())
            if size < MIN_SECRET_BYTES and not (optional and size == 0):
                raise ValueError(
                    f"{variable} must be at least {MIN_SECRET_BYTES} bytes, got {size} "
                    "(generate one: openssl rand -hex 32)"
                )
        return self

    @model_validator(mode="after")
    def _check_password_cost(self) -> Settings:
        n = self.password_scrypt_n
        if n & (n - 1):
            raise ValueError(f"TICKCAST_PASSWORD_SCRYPT_N must be a power of two, got {n}")
        if self.env == "production" and n < 2**17:
            raise ValueError("TICKCAST_PASSWORD_SCRYPT_N below 2**17 is for tests only")
        return self

    @model_validator(mode="after")
    def _check_jwt_keys(self) -> Settings:
        if self.jwt_algorithm == "RS256" and not (
            self.jwt_private_key_path and self.jwt_public_key_path
        ):
            raise ValueError(
                "RS256 needs TICKCAST_JWT_PRIVATE_KEY_PATH and TICKCAST_JWT_PUBLIC_KEY_PATH"
            )
        return self

    @property
    def clickhouse(self) -> str:
        """The effective ClickHouse DSN."""
        return self.clickhouse_dsn or f"chdb://{self.data_dir / 'clickhouse'}"

    @property
    def mlflow_uri(self) -> str:
        """The effective MLflow tracking URI."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> str:
        """The effective artifact root of a local MLflow store."""
        return self.mlflow_artifact_root or str(self.data_dir / "mlflow" / "artifacts")

    def topic(self, name: str) -> str:
        """The namespaced name of a logical topic (``ticks`` → ``<prefix>ticks``)."""
        return f"{self.topic_prefix}{name}"


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts local connections.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback(""), is_loopback("10.1.2.3")
    (False, False, False)
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_public_dev_secret(settings: Settings, host: str, *, variable: str = "--host") -> None:
    """Refuse to serve the API on a non-loopback ``host`` with the public development secret.

    Anyone who can reach the API could mint tokens with it (it is in the source code).
    Raises ``ValueError`` naming TICKCAST_JWT_SECRET (pydantic and the CLI report it).
    """
    if (
        settings.jwt_algorithm == "HS256"
        and settings.jwt_secret.get_secret_value() == DEV_SECRET
        and not is_loopback(host)
    ):
        raise ValueError(
            f"TICKCAST_JWT_SECRET is the public development default, which anyone can sign "
            f"tokens with: set TICKCAST_JWT_SECRET to {MIN_SECRET_BYTES}+ random bytes "
            f"(openssl rand -hex 32) to serve on {host!r} ({variable}), or bind to 127.0.0.1"
        )


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable :class:`ConfigError`."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"TICKCAST_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        # a rejected value may be a DSN with its password: the message is redacted
        raise ConfigError(redact(f"invalid configuration: {problems}")) from None
