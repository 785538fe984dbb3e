"""Batching ClickHouse sinks: size- and time-triggered, column-oriented, retried, bounded.

The shape follows Quix Streams' sink: a table adds one method, ``write(batch)``; the base
class :class:`BatchingSink` owns everything else:

* **batching** by size *and* time: a batch is due when it holds ``batch_rows`` rows or its
  oldest row waited ``batch_interval_s`` (chDB pays ~20 ms per INSERT whatever its size);
* **retries** with exponential backoff and jitter (:class:`RetryPolicy`), never blocking the
  caller: :meth:`BatchingSink.flush` either writes or schedules the next attempt;
* **bounded memory**: past ``max_buffer_rows`` the sink reports :attr:`BatchingSink.full` and
  the runner pauses the topic's partitions (back-pressure) instead of buffering more;
* **offsets**: a batch carries the last Kafka offset of every (topic, partition) it covers,
  rows or skipped records alike, so the runner commits exactly what ClickHouse confirmed.

:class:`ClickHouseSink` writes one table through clickhouse-connect (``column_oriented``
inserts of integer-millisecond timestamps). Connections open in ``setup()``/on first write
through a shared :class:`ClickHouseConnector`, which also runs the migrate step once.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import connect
from sinks.tables import Row, TableMapping, prepare_tables
from tickcast.config import Settings
from tickcast.metrics import Metrics, get_metrics

log = structlog.get_logger(__name__)

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": half the delay fixed, half random.

    >>> policy = RetryPolicy(base_s=1.0, max_s=8.0)
    >>> rng = random.Random(0)
    >>> [0.5 <= policy.delay(1, rng) <= 1.0, 4.0 <= policy.delay(4, rng) <= 8.0]
    [True, True]
    >>> 4.0 <= policy.delay(30, rng) <= 8.0
    True
    """

    base_s: float = 0.2
    max_s: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` ≥ 1 failures so far)."""
        exponent = min(max(attempt - 1, 0), 60)
        ceiling = min(self.max_s, self.base_s * self.factor**exponent)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(slots=True)
class SinkBatch:
    """Rows to write plus the Kafka offsets they (and skipped records) cover."""

    rows: list[Row] = field(default_factory=list)
    offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)

    def columns(self, start: int = 0, stop: int | None = None) -> list[tuple[Any, ...]]:
        """Rows ``start:stop`` transposed to one sequence per column."""
        return list(zip(*self.rows[start:stop], strict=True))


class BatchingSink(ABC):
    """Buffer rows; write them in batches with retries; report back-pressure.

    Subclasses implement :meth:`write` (and may open connections in :meth:`setup`).
    """

    def __init__(
        self,
        name: str,
        *,
        batch_rows: int = 50_000,
        batch_interval_s: float = 1.0,
        max_buffer_rows: int = 200_000,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if max_buffer_rows < batch_rows:
            max_buffer_rows = batch_rows
        self.name = name
        self.batch_rows = batch_rows
        self.batch_interval_s = batch_interval_s
        self.max_buffer_rows = max_buffer_rows
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        self.buffer = SinkBatch()
        self.first_at: float | None = None
        self.failures = 0
        self.next_attempt = 0.0
        self.rows_written = 0

    # --- to implement -----------------------------------------------------------------------
    def setup(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Open connections (called once before the first record)."""

    @abstractmethod
    def write(self, batch: SinkBatch) -> None:
        """Write every row of ``batch`` or raise; a raise keeps the batch for a retry."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release connections."""

    # --- buffering --------------------------------------------------------------------------
    def add(self, row: Row | None, topic: str, partition: int, offset: int) -> None:
        """Buffer ``row`` (``None``: a skipped record whose offset still needs covering)."""
        if self.first_at is None:
            self.first_at = self.clock()
        if row is not None:
            self.buffer.rows.append(row)
        self.buffer.offsets[(topic, partition)] = offset

    @property
    def pending_rows(self) -> int:
        """Rows buffered and not yet confirmed."""
        return len(self.buffer.rows)

    @property
    def full(self) -> bool:
        """True when the buffer reached its bound: stop feeding this sink."""
        return len(self.buffer.rows) >= self.max_buffer_rows

    def due(self) -> bool:
        """True when a batch should be written now (size or age reached)."""
        if self.first_at is None:
            return False
        if len(self.buffer.rows) >= self.batch_rows:
            return True
        return self.clock() - self.first_at >= self.batch_interval_s

    def flush(self, force: bool = False) -> SinkBatch | None:
        """Write the buffer when due (or ``force``) and the backoff allows.

        Returns the confirmed batch (commit its offsets), or ``None`` when nothing was
        written: not due, still backing off, or the write failed (retry scheduled).
        """
        if self.first_at is None or not (force or self.due()):
            return None
        if self.clock() < self.next_attempt:
            return None
        batch = self.buffer
        if batch.rows:
            try:
                self.write(batch)
            except Exception as exc:  # any failure of the store: retry later, keep rows
                self.failures += 1
                wait = self.retry.delay(self.failures, self.rng)
                self.next_attempt = self.clock() + wait
                log.warning(
                    "sink write failed",
                    sink=self.name,
                    rows=len(batch.rows),
                    failures=self.failures,
                    retry_in_s=round(wait, 3),
                    error=str(exc).splitlines()[0][:300] if str(exc) else repr(exc),
                )
                return None
        if self.failures:
            log.info("sink recovered", sink=self.name, after_failures=self.failures)
        self.failures = 0
        self.next_attempt = 0.0
        self.rows_written += len(batch.rows)
        self.buffer = SinkBatch()
        self.first_at = None
        return batch

    def drop_buffer(self) -> None:
        """Forget what is buffered (partitions revoked: the new owner re-reads it)."""
        self.buffer = SinkBatch()
        self.first_at = None


class ClickHouseConnector:
    """One lazily opened client shared by the sinks of a process; migrates once."""

    def __init__(
        self,
        settings: Settings,
        factory: Callable[[], Client] | None = None,
        *,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.factory = factory or (lambda: connect(settings))
        self.migrate = migrate
        self._client: Client | None = None
        self._prepared = False

    def get(self) -> Client:
        """The client, connecting (and running the migrate step) when needed."""
        if self._client is None:
            self._client = self.factory()
        if self.migrate and not self._prepared:
            prepare_tables(self._client, self.settings)
            self._prepared = True
        return self._client

    def reset(self) -> None:
        """Drop the client after a failure; the next :meth:`get` reconnects."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken connection may fail; nothing to do
                log.debug("close failed", exc_info=True)


class ClickHouseSink(BatchingSink):
    """A :class:`BatchingSink` that inserts into one ClickHouse table, column-oriented."""

    def __init__(
        self,
        settings: Settings,
        mapping: TableMapping,
        connector: ClickHouseConnector,
        *,
        metrics: Metrics | None = None,
        **options: Any,
    ) -> None:
        defaults: dict[str, Any] = {
            "batch_rows": settings.sink_batch_rows,
            "batch_interval_s": settings.sink_batch_interval_s,
            "max_buffer_rows": settings.sink_max_buffer_rows,
            "retry": RetryPolicy(max_s=settings.sink_retry_max_s),
        }
        defaults.update(options)
        super().__init__(mapping.table, **defaults)
        self.settings = settings
        self.mapping = mapping
        self.connector = connector
        self.metrics = metrics or get_metrics()

    def setup(self) -> None:
        """Connect now when possible; an outage here is retried by the first write."""
        try:
            self.connector.get()
            self.metrics.set_dependency("clickhouse", True)
        except Exception as exc:
            self.connector.reset()
            self.metrics.set_dependency("clickhouse", False)
            log.warning("clickhouse not available yet", sink=self.name, error=str(exc)[:300])

    def write(self, batch: SinkBatch) -> None:
        """INSERT the batch in chunks of ``batch_rows`` rows (all or raise)."""
        table, database = self.mapping.table, self.settings.clickhouse_database
        try:
            with self.metrics.clickhouse_op("insert", table):
                client = self.connector.get()
                for start in range(0, len(batch.rows), self.batch_rows):
                    client.insert(
                        table,
                        batch.columns(start, start + self.batch_rows),
                        column_names=list(self.mapping.columns),
                        database=database,
                        column_oriented=True,
                    )
        except Exception:
            self.connector.reset()
            self.metrics.set_dependency("clickhouse", False)
            raise
        self.metrics.set_dependency("clickhouse", True)
        self.metrics.record_events(f"clickhouse:{table}", "out", len(batch.rows))

    def close(self) -> None:
        """Nothing per table: the connector is closed by its owner."""
