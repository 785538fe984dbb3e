"""One redaction function for responses, logs and CLI output: every DSN kind, every channel."""

from __future__ import annotations

import doctest
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

import tickcast.redaction
from tickcast.errors import DependencyError
from tickcast.health import Health
from tickcast.logging import RedactingFilter, configure_logging
from tickcast.redaction import redact, redact_value

PW = "S3cr3t-p@ss:w/rd"  # holds the characters that end a naive match: @ : /
PLAIN = "hunter2hunter2"

DSNS = [
    # (text with a secret, the secret, what must survive)
    (f"http://default:{PLAIN}@127.0.0.1:8123/", PLAIN, "http://default:***@127.0.0.1:8123/"),
    (f"https://reader:{PW}@ch.example.com:8443/db", PW, "https://reader:***@ch.example.com"),
    (f"chdb://app:{PLAIN}@/data/clickhouse", PLAIN, "chdb://app:***@/data/clickhouse"),
    (f"redis://:{PW}@127.0.0.1:16379/0", PW, "redis://:***@127.0.0.1:16379/0"),
    (f"rediss://default:{PLAIN}@cache:6380/1", PLAIN, "rediss://default:***@cache:6380/1"),
    (f"sqlite://u:{PLAIN}@/tmp/mlflow.db", PLAIN, "sqlite://u:***@/tmp/mlflow.db"),
    (
        f"postgresql+psycopg://mlflow:{PW}@db:5432/mlflow?sslmode=require",
        PW,
        "postgresql+psycopg://mlflow:***@db:5432/mlflow?sslmode=require",
    ),
    (f"mysql://root:{PLAIN}@mysql:3306/x", PLAIN, "mysql://root:***@mysql:3306/x"),
    (f"mysql+pymysql://root:{PW}@mysql/x", PW, "mysql+pymysql://root:***@mysql/x"),
    (f"http://mlflow:{PLAIN}@mlflow:5000", PLAIN, "http://mlflow:***@mlflow:5000"),
    (f"SASL_SSL://alice:{PLAIN}@broker:9093", PLAIN, "SASL_SSL://alice:***@broker:9093"),
    (
        f'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" '
        f'password="{PLAIN}";',
        PLAIN,
        'username="alice" password="***";',
    ),
    (f"sasl.username=alice sasl.password={PLAIN}", PLAIN, "sasl.username=alice sasl.password=***"),
    (
        f"http://ch:8123/?user=default&password={PLAIN}&database=tc",
        PLAIN,
        "?user=default&password=***&database=tc",
    ),
    (f"host=db user=app password='{PW}' dbname=x", PW, "host=db user=app password='***' dbname=x"),
    (f'{{"password": "{PLAIN}", "user": "a"}}', PLAIN, '{"password": "***", "user": "a"}'),
    (f"Authorization: Bearer {PLAIN}.abc", PLAIN, "Authorization: ***"),
    (f"X-ClickHouse-Key: {PLAIN}", PLAIN, "X-ClickHouse-Key: ***"),
    (f"token={PLAIN}&x=1", PLAIN, "token=***&x=1"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), DSNS)
def test_every_dsn_kind_loses_its_password(text: str, secret: str, kept: str) -> None:
    out = redact(f"cannot open {text}: connection refused")
    assert secret not in out
    assert kept in out
    if not kept.endswith(": ***"):  # a header's value runs to the end of its line
        assert out.endswith("connection refused")
    assert redact(out) == out  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "chdb:///work/main/.tickcast/clickhouse",
        "sqlite:////tmp/mlflow/mlflow.db",
        "http://127.0.0.1:8123/?database=tc",
        "redis://127.0.0.1:16379/0",
        "user@example.com wrote http://user@host/x",
        "TICKCAST_JWT_SECRET must be at least 32 bytes",
        "127.0.0.1:19092 does not answer",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_nested_values_and_secret_keys() -> None:
    value = {
        "jwt_secret": PLAIN,
        "nested": [{"dsn": f"redis://:{PLAIN}@h/0"}, (f"mysql://a:{PLAIN}@h/x",)],
        "port": 8123,
    }
    assert PLAIN not in json.dumps(redact_value(value))
    assert redact_value(value)["port"] == 8123


def test_dependency_errors_and_health_are_redacted() -> None:
    error = DependencyError("clickhouse", f"cannot open http://default:{PLAIN}@h:9/", "fix it")
    assert PLAIN not in str(error)
    assert "http://default:***@h:9/" in str(error)
    health = Health("mlflow", False, f"http://u:{PLAIN}@mlflow:5000: down", f"token={PLAIN}")
    assert PLAIN not in health.detail + health.hint


@pytest.fixture
def json_logs() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_structlog_lines_and_tracebacks_are_redacted(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", json=True)
    log = structlog.get_logger("test")
    log.info(f"connected to http://default:{PLAIN}@h:8123", dsn=f"rediss://:{PW}@h:6380/0")
    try:
        raise ConnectionError(f"refused: postgresql+psycopg://app:{PLAIN}@db/x")
    except ConnectionError:
        log.exception("store down")
    err = capsys.readouterr().err
    assert PLAIN not in err
    assert PW not in err
    assert "postgresql+psycopg://app:***@db/x" in err


def test_standard_library_records_are_redacted() -> None:
    record = logging.LogRecord(
        "clickhouse_connect",
        logging.WARNING,
        __file__,
        1,
        "cannot reach %s",
        (f"http://u:{PW}@h",),
        None,
    )
    try:
        raise OSError(f"mysql://root:{PLAIN}@db/x refused")
    except OSError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    rendered = logging.Formatter().format(record)
    assert PW not in rendered
    assert PLAIN not in rendered
    assert "cannot reach http://u:***@h" in rendered


def test_doctests() -> None:
    result = doctest.testmod(tickcast.redaction)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    "text",
    ["a." * 50_000, "http://a:" * 12_000, 'password="' * 10_000, "a@" * 50_000, "x-" * 50_000],
)
def test_hostile_input_is_redacted_in_linear_time(text: str) -> None:
    import time

    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 2.0  # was minutes with an unbounded key pattern


def test_a_rejected_setting_is_reported_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tickcast.config import load_settings
    from tickcast.errors import ConfigError

    monkeypatch.setenv("TICKCAST_REDIS_URL", f"postgres://app:{PLAIN}@db/x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TICKCAST_REDIS_URL" in str(info.value)
    assert PLAIN not in str(info.value)
