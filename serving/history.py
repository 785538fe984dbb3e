"""History look-ups for the API: ClickHouse through ``sinks.history``, off the event loop.

:class:`HistoryReader` is the seam (tests put a fake there); :class:`ClickHouseHistory` is the
real one: ``sinks.history.history_page`` on a client from ``sinks.history.open_reader`` — the
sink's read-only endpoint with embedded chDB, or the ClickHouse server. Clients are opened
lazily, one per worker thread (clickhouse-connect clients are not shared across threads), and
dropped after a failure so the next call reconnects.

:class:`HistoryService` runs a reader in a thread with a timeout behind a circuit breaker.
Failures are told apart, because only outages may open the circuit:

* a cursor that is not this API's for this query: :class:`~sinks.history.InvalidCursor`
  (400), checked before anything is queried;
* a query ClickHouse refuses because of what was asked (a type or range error):
  :class:`HistoryQueryError` (400);
* ClickHouse answered with another error: :class:`~serving.circuit.DependencyRefused`
  (503, not counted by the breaker);
* ClickHouse unreachable or too slow: :class:`~tickcast.errors.DependencyError` (503,
  counted), then :class:`~serving.circuit.DependencyUnavailable` while the circuit is open.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from serving.circuit import CircuitBreaker, DependencyRefused
from sinks.history import (
    Cursor,
    InvalidCursor,
    Page,
    derive_cursor_key,
    history_page,
    open_reader,
    query_binding,
)
from tickcast.config import Settings
from tickcast.errors import DependencyError, RequestError

Kind = Literal["predictions", "outcomes"]
log = structlog.get_logger("serving.history")

#: ClickHouse error codes of a query refused for what it asked (a 400 for the caller):
#: CANNOT_PARSE_*, BAD_ARGUMENTS, ILLEGAL_TYPE_OF_ARGUMENT, TYPE_MISMATCH,
#: ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
#: DECIMAL_OVERFLOW, BAD_QUERY_PARAMETER.
INPUT_ERROR_CODES = frozenset({6, 26, 27, 36, 38, 41, 43, 53, 69, 70, 72, 321, 407, 457})
#: Error codes that mean the server timed out or lost a connection: an outage.
TIMEOUT_ERROR_CODES = frozenset({159, 209, 210})
_CODE = re.compile(r"\bCode:\s*(\d+)")


class HistoryQueryError(RequestError, ValueError):
    """ClickHouse refused a history query because of what it asked (``code`` is its error)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the history query was refused (ClickHouse error {code})")
        self.code = code


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a driver error (its field, or ``Code: N`` in its text)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def history_cursor_key(settings: Settings) -> bytes:
    """The key history cursors are signed with (shared by every replica with the same secrets)."""
    secret = settings.history_cursor_secret.get_secret_value()
    return derive_cursor_key(secret or settings.jwt_secret.get_secret_value())


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """One page request: a symbol's rows in ``[start_ms, end_ms)`` after ``cursor``."""

    symbol: str
    start_ms: int
    end_ms: int
    kind: Kind = "predictions"
    with_outcomes: bool = False
    model: str | None = None
    cursor: str | None = None
    limit: int = 500

    def binding(self) -> bytes:
        """What this query's cursors are tied to (:func:`sinks.history.query_binding`)."""
        return query_binding(
            self.symbol, self.start_ms, self.end_ms, kind=self.kind,
            with_outcomes=self.with_outcomes, model_name=self.model, run_id="", limit=self.limit,
        )  # fmt: skip


class HistoryReader(Protocol):
    """Blocking history access (called from a worker thread)."""

    def page(self, query: HistoryQuery) -> Page:
        """One page; raises InvalidCursor, HistoryQueryError, DependencyError or OSError."""
        ...


class ClickHouseHistory:
    """:class:`HistoryReader` over ClickHouse (see the module docstring)."""

    def __init__(self, settings: Settings, *, url: str | None = None) -> None:
        self.settings = settings
        self.url = url
        self._local = threading.local()
        self._cursor_key = history_cursor_key(settings)

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = open_reader(self.settings, url=self.url)
            self._local.client = client
        return client

    def page(self, query: HistoryQuery) -> Page:
        """One page of ``sinks.history.history_page`` (errors: see the module docstring)."""
        if query.cursor is not None:  # the caller's fault, found before connecting
            Cursor.decode(query.cursor, self._cursor_key, query.binding())
        client = self._client()
        try:
            return history_page(
                client,
                self.settings.clickhouse_database,
                query.symbol,
                query.start_ms,
                query.end_ms,
                kind=query.kind,
                with_outcomes=query.with_outcomes,
                model_name=query.model,
                after=query.cursor,
                limit=query.limit,
                cursor_key=self._cursor_key,
            )
        except InvalidCursor:
            raise
        except DatabaseError as exc:
            code = error_code(exc)
            if not isinstance(exc, OperationalError) and code not in TIMEOUT_ERROR_CODES:
                if code in INPUT_ERROR_CODES:
                    log.warning("history_query_refused", code=code)
                    raise HistoryQueryError(code) from exc
                raise DependencyRefused("clickhouse", f"history query failed: {exc}"[:300]) from exc
            self._local.client = None
            raise DependencyError("clickhouse", f"history query failed: {exc}"[:300]) from exc
        except Exception as exc:  # the driver's errors vary; the client may be broken
            self._local.client = None
            raise DependencyError("clickhouse", f"history query failed: {exc}"[:300]) from exc


class HistoryService:
    """Runs a :class:`HistoryReader` off the event loop, with a timeout and a breaker."""

    def __init__(self, reader: HistoryReader, breaker: CircuitBreaker) -> None:
        self.reader = reader
        self.breaker = breaker

    async def page(self, query: HistoryQuery) -> Page:
        """One page; ``InvalidCursor``, ``HistoryQueryError`` or ``DependencyUnavailable``."""
        return await self.breaker.call(asyncio.to_thread, self.reader.page, query)
