from __future__ import annotations

import pytest

from tickcast.config import DEV_SECRET, Settings, load_settings
from tickcast.errors import ConfigError


def test_defaults_are_embedded(tmp_path: object) -> None:
    s = Settings(data_dir="/tmp/x")  # type: ignore[arg-type]
    assert s.clickhouse == "chdb:///tmp/x/clickhouse"
    assert s.mlflow_uri == "sqlite:////tmp/x/mlflow/mlflow.db"
    assert s.topic("ticks") == "ticks"


def test_topic_prefix_namespaces_topics() -> None:
    assert Settings(topic_prefix="bt1.").topic("ticks") == "bt1.ticks"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TICKCAST_REDIS_URL", "localhost:6379", "TICKCAST_REDIS_URL"),
        ("TICKCAST_KAFKA_BOOTSTRAP", "localhost", "TICKCAST_KAFKA_BOOTSTRAP"),
        ("TICKCAST_CLICKHOUSE_DSN", "postgres://x", "TICKCAST_CLICKHOUSE_DSN"),
        ("TICKCAST_PARTITIONS", "zero", "TICKCAST_PARTITIONS"),
    ],
)
def test_bad_configuration_is_one_readable_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_ENV", "production")
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("TICKCAST_JWT_SECRET", "a-real-secret-" + "x" * 20)
    assert load_settings().jwt_secret.get_secret_value() != DEV_SECRET
