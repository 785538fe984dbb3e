"""Correlation-id headers, and structlog's JSON lines never carrying a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from streams.correlation import HEADER, correlation_of, from_headers, kafka_headers
from tickcast.logging import bind_correlation_id, configure_logging

SECRET = "s3cr3t-VALUE-never-logged"


def test_headers_round_trip_in_both_client_shapes() -> None:
    headers = kafka_headers("abc123", run_id="r-7")
    assert headers == [(HEADER, b"abc123"), ("run_id", b"r-7")]
    assert from_headers(headers) == "abc123"  # confluent-kafka: list of (str, bytes)
    assert from_headers(dict(headers)) == "abc123"  # aiokafka/Faust: a mapping
    assert from_headers([("other", b"x")]) is None
    assert from_headers([(HEADER, None)]) is None
    assert kafka_headers(None) is None
    assert kafka_headers("", run_id="") is None


def test_header_wins_over_the_payload_field() -> None:
    assert correlation_of({"correlation_id": "from-value"}, [(HEADER, b"from-header")]) == (
        "from-header"
    )
    assert correlation_of({"correlation_id": "from-value"}, None) == "from-value"
    assert correlation_of({"correlation_id": None}, []) is None


@pytest.fixture
def json_logs() -> Iterator[None]:
    configure_logging("DEBUG", json=True)
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def test_secret_fields_are_redacted_in_json_logs(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # configure_logging binds sys.stderr when called: reconfigure under capsys's stream
    configure_logging("DEBUG", json=True)
    cid = bind_correlation_id("cid-1")
    log = structlog.get_logger("test")
    log.info(
        "login",
        password=SECRET, jwt_secret=SECRET, access_token=SECRET, refresh_token=SECRET,
        Authorization=f"Bearer {SECRET}", API_KEY=SECRET, client_secret=SECRET, user="alice",
    )  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert SECRET not in line
    event = json.loads(line)
    for key in ("password", "jwt_secret", "access_token", "refresh_token", "Authorization",
                "API_KEY", "client_secret"):  # fmt: skip
        assert event[key] == "***", key
    assert event["user"] == "alice"
    assert event["correlation_id"] == cid == "cid-1"
    assert event["event"] == "login"
    assert event["level"] == "info"


def test_nested_and_url_secrets_are_redacted(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", json=True)
    log = structlog.get_logger("test")
    log.info("request", headers={"authorization": f"Bearer {SECRET}"})
    log.info("connect", redis_url=f"redis://:{SECRET}@127.0.0.1:16379/0")
    assert SECRET not in capsys.readouterr().err
