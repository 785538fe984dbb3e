"""History look-ups for the API: ClickHouse through ``sinks.history``, off the event loop.

:class:`HistoryReader` is the seam (tests put a fake there); :class:`ClickHouseHistory` is the
real one: ``sinks.history.history_page`` on a client from ``sinks.history.open_reader`` — the
sink's read-only endpoint with embedded chDB, or the ClickHouse server. Clients are opened
lazily, one per worker thread (clickhouse-connect clients are not shared across threads), and
dropped after a failure so the next call reconnects.

:class:`HistoryService` runs a reader in a thread with a timeout behind a circuit breaker:
ClickHouse down is :class:`~serving.circuit.DependencyUnavailable` (503 with Retry-After),
a bad cursor :class:`~sinks.history.InvalidCursor`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from serving.circuit import CircuitBreaker
from sinks.history import InvalidCursor, Page, history_page, open_reader
from tickcast.config import Settings
from tickcast.errors import DependencyError

Kind = Literal["predictions", "outcomes"]


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


class HistoryReader(Protocol):
    """Blocking history access (called from a worker thread)."""

    def page(self, query: HistoryQuery) -> Page:
        """One page; raises InvalidCursor, DependencyError or OSError."""
        ...


class ClickHouseHistory:
    """:class:`HistoryReader` over ClickHouse (see the module docstring)."""

    def __init__(self, settings: Settings, *, url: str | None = None) -> None:
        self.settings = settings
        self.url = url
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = open_reader(self.settings, url=self.url)
            self._local.client = client
        return client

    def page(self, query: HistoryQuery) -> Page:
        """One page of ``sinks.history.history_page``."""
        if query.cursor is not None:
            from sinks.history import Cursor

            Cursor.decode(query.cursor)  # a bad cursor is the caller's fault, not ClickHouse's
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
            )
        except InvalidCursor:
            raise
        except Exception as exc:  # the driver's errors vary; the client may be broken
            self._local.client = None
            raise DependencyError("clickhouse", f"history query failed: {exc}"[:300]) from exc


class HistoryService:
    """Runs a :class:`HistoryReader` off the event loop, with a timeout and a breaker."""

    def __init__(self, reader: HistoryReader, breaker: CircuitBreaker) -> None:
        self.reader = reader
        self.breaker = breaker

    async def page(self, query: HistoryQuery) -> Page:
        """One page; ``InvalidCursor`` or ``DependencyUnavailable`` otherwise."""
        return await self.breaker.call(asyncio.to_thread, self.reader.page, query)
