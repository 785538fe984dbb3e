"""ClickHouseHistory tells the caller's mistakes from ClickHouse's: only outages may open the
history circuit (the probe's `ts = 1e30` cursor opened it for every user)."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from serving.circuit import CircuitBreaker, DependencyRefused, DependencyUnavailable
from serving.history import (
    ClickHouseHistory,
    HistoryQuery,
    HistoryQueryError,
    HistoryService,
    error_code,
    history_cursor_key,
)
from sinks.history import Cursor, InvalidCursor, derive_cursor_key
from tickcast.config import Settings
from tickcast.errors import DependencyError

T0 = 1_700_000_000_000
# What the sink's read endpoint answers for the probe's cursor (HTTP 500, no code header).
TYPE_ERROR = (
    "HTTP driver received HTTP status 500, server response: Code: 43. DB::Exception: The first "
    "argument for function fromUnixTimestamp64Milli must be integer"
)


class FailingClient:
    """A clickhouse-connect client whose every query raises ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.queries = 0

    def query(self, *_: Any, **__: Any) -> Any:
        self.queries += 1
        raise self.exc


class FakeClientHistory(ClickHouseHistory):
    """ClickHouseHistory on a fake client (in every worker thread)."""

    def __init__(self, settings: Settings, client: FailingClient) -> None:
        super().__init__(settings)
        self.client = client

    def _client(self) -> Any:
        return self.client


def reader(exc: Exception) -> tuple[ClickHouseHistory, FailingClient]:
    client = FailingClient(exc)
    return FakeClientHistory(Settings(), client), client


QUERY = HistoryQuery("AAPL", T0, T0 + 60_000)


def test_error_codes_come_from_the_field_or_the_text() -> None:
    assert error_code(DatabaseError("x", code=241)) == 241
    assert error_code(DatabaseError(TYPE_ERROR)) == 43
    assert error_code(OperationalError("Error executing HTTP request")) is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (DatabaseError(TYPE_ERROR), HistoryQueryError),
        (DatabaseError("Code: 321. Value out of range", code=321), HistoryQueryError),
        (DatabaseError("Code: 241. Memory limit exceeded"), DependencyRefused),
        (DatabaseError("Code: 159. Timeout exceeded"), DependencyError),
        (OperationalError("Error executing HTTP request"), DependencyError),
        (ConnectionRefusedError("refused"), DependencyError),
    ],
)
def test_driver_errors_are_classified(exc: Exception, expected: type[Exception]) -> None:
    history, _ = reader(exc)
    with pytest.raises(expected) as info:
        history.page(QUERY)
    if expected is DependencyError:  # an outage: exactly a DependencyError, not a refusal
        assert not isinstance(info.value, DependencyRefused)


def test_a_bad_cursor_is_refused_before_any_query() -> None:
    history, client = reader(ConnectionRefusedError("must not be reached"))
    forged = Cursor(10**30, "x", "1", 1).encode(derive_cursor_key("not-the-key"), b"")
    with pytest.raises(InvalidCursor):
        history.page(HistoryQuery("AAPL", T0, T0 + 60_000, cursor=forged))
    assert client.queries == 0


def test_cursor_key_comes_from_its_own_secret_or_the_jwt_secret() -> None:
    base = Settings()
    own = base.model_copy(update={"history_cursor_secret": base.jwt_secret.__class__("c" * 40)})
    assert history_cursor_key(base) != history_cursor_key(own)
    assert history_cursor_key(base) == derive_cursor_key(base.jwt_secret.get_secret_value())


async def test_input_errors_never_open_the_history_circuit() -> None:
    history, client = reader(DatabaseError(TYPE_ERROR))
    service = HistoryService(history, CircuitBreaker("clickhouse", failure_threshold=5))
    for _ in range(10):
        with pytest.raises(HistoryQueryError):
            await service.page(QUERY)
    assert service.breaker.state == "closed"
    assert client.queries == 10
    client.exc = OperationalError("Error executing HTTP request")  # ClickHouse really down
    for _ in range(5):
        with pytest.raises(DependencyUnavailable):
            await service.page(QUERY)
    assert service.breaker.state == "open"
