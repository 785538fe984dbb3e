"""The one configuration object: every setting is a ``TICKCAST_*`` environment variable.

Values are read from the environment and from a ``.env`` file in the working directory.
Every setting has an embedded default so that a fresh machine runs the local stack; secrets
have a development default that :class:`Settings` refuses outside ``env=development``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickcast.errors import ConfigError

DEV_SECRET = "tickcast-development-secret-change-me"  # noqa: S105 - refused outside development
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

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    kafka_version: str = Field("3.9.1", description="Apache Kafka version the local stack runs.")
    kafka_home: Path = Field(
        REPO_ROOT / "infra" / "kafka", description="Folder with the broker's pom and scripts."
    )
    topic_prefix: str = Field("", description="Prefix of every topic name (namespaces).")
    partitions: int = Field(4, ge=1, description="Partitions of every per-symbol topic.")
    consumer_group: str = Field("tickcast", description="Consumer group / Faust app id.")
    linger_ms: int = Field(5, ge=0, description="Producer linger: the latency floor knob.")

    # Redis
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL.")
    redis_key_prefix: str = Field("tc:", description="Prefix of every Redis key (namespaces).")
    feature_ttl_s: int = Field(7 * 86400, ge=1, description="TTL of a symbol's feature key.")

    # ClickHouse
    clickhouse_dsn: str = Field(
        "", description="chdb://<path> (embedded, default <data_dir>/clickhouse) or http(s)://..."
    )
    clickhouse_database: str = Field("tickcast", description="ClickHouse database.")

    # MLflow
    mlflow_tracking_uri: str = Field(
        "", description="MLflow tracking URI; default sqlite:///<data_dir>/mlflow/mlflow.db."
    )
    mlflow_artifact_root: str = Field(
        "", description="Artifact root for a local store; default <data_dir>/mlflow/artifacts."
    )

    # Serving
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, ge=1, le=65535, description="API port.")
    jwt_secret: SecretStr = Field(SecretStr(DEV_SECRET), description="HS256 signing secret.")

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
        return self

    @cached_property
    def clickhouse(self) -> str:
        """The effective ClickHouse DSN."""
        return self.clickhouse_dsn or f"chdb://{self.data_dir / 'clickhouse'}"

    @cached_property
    def mlflow_uri(self) -> str:
        """The effective MLflow tracking URI."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}"

    @cached_property
    def mlflow_artifacts(self) -> str:
        """The effective artifact root of a local MLflow store."""
        return self.mlflow_artifact_root or str(self.data_dir / "mlflow" / "artifacts")

    def topic(self, name: str) -> str:
        """The namespaced name of a logical topic (``ticks`` → ``<prefix>ticks``)."""
        return f"{self.topic_prefix}{name}"


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
        raise ConfigError(f"invalid configuration: {problems}") from None
