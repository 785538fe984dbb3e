"""Kafka consumer lag: log-end offset minus committed offset, per group, topic and partition.

Three layers, each replaceable in tests:

* :func:`compute_lag` — pure arithmetic on offsets (no I/O);
* :class:`KafkaOffsets` — the thin adapter over confluent-kafka's ``AdminClient``
  (``list_consumer_groups``, ``list_offsets``) and a non-joining ``Consumer`` of a group (its
  committed offsets); anything with
  the same three methods (:class:`OffsetSource`) can stand in for it;
* :func:`collect_lag`, :func:`run_lag_exporter`, :func:`watch_lag`, :func:`print_lag` — what the
  CLI (``tickcast lag [--watch] [--serve PORT] [--group G]``) calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from rich.console import Console
from rich.table import Table

from tickcast.errors import DependencyError
from tickcast.metrics import Metrics, get_metrics, serve_metrics

log = structlog.get_logger(__name__)

TopicPartition = tuple[str, int]
Watermarks = dict[TopicPartition, tuple[int, int]]
#: Offsets below zero are librdkafka sentinels (e.g. -1001 "no committed offset").
_NO_OFFSET = -1


@dataclass(frozen=True, slots=True)
class LagRow:
    """Lag of one consumer group on one partition.

    ``committed`` is ``None`` when the group has no valid commit there; its lag is then counted
    from the partition's earliest retained offset (everything retained is still to be read).
    """

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


class OffsetSource(Protocol):
    """Where offsets come from (the broker, or a fake in tests)."""

    def list_groups(self) -> list[str]:
        """Every consumer group the cluster knows."""
        ...

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """Committed offsets of ``group`` (sentinels below zero when none)."""
        ...

    def watermarks(self, partitions: Iterable[TopicPartition]) -> Watermarks:
        """``(earliest, log-end)`` offsets of each partition."""
        ...


def compute_lag(
    committed: Mapping[str, Mapping[TopicPartition, int]],
    watermarks: Mapping[TopicPartition, tuple[int, int]],
) -> list[LagRow]:
    """Lag rows from committed offsets per group and ``(earliest, end)`` per partition.

    Lag is never negative (a commit read after a newer end offset counts as caught up), and
    partitions whose watermarks are unknown are left out. Rows are sorted by group, topic,
    partition.

    >>> compute_lag({"g": {("t", 0): 7, ("t", 1): -1001}}, {("t", 0): (0, 10), ("t", 1): (2, 5)})
    [LagRow(group='g', topic='t', partition=0, committed=7, end=10, lag=3), \
LagRow(group='g', topic='t', partition=1, committed=None, end=5, lag=3)]
    """
    rows: list[LagRow] = []
    for group, offsets in committed.items():
        for (topic, partition), offset in offsets.items():
            marks = watermarks.get((topic, partition))
            if marks is None:
                continue
            earliest, end = marks
            valid = offset if offset > _NO_OFFSET else None
            start = valid if valid is not None else earliest
            rows.append(LagRow(group, topic, partition, valid, end, max(0, end - start)))
    rows.sort(key=lambda r: (r.group, r.topic, r.partition))
    return rows


class KafkaOffsets:
    """:class:`OffsetSource` backed by a confluent-kafka ``AdminClient``."""

    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        from confluent_kafka.admin import AdminClient

        self._timeout = timeout_s
        self._bootstrap = bootstrap
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "socket.timeout.ms": int(timeout_s * 1000),
            # librdkafka's connection chatter goes to logging, not straight to stderr
            "logger": logging.getLogger("monitoring.lag.rdkafka"),
        }
        self._admin = AdminClient(config)

    def list_groups(self) -> list[str]:
        """Every consumer group the cluster knows."""
        result = self._admin.list_consumer_groups(request_timeout=self._timeout)
        try:
            listing = result.result(timeout=self._timeout)
        finally:
            self._admin.poll(0)  # serve queued librdkafka log lines so they never pile up
        return sorted(g.group_id for g in listing.valid)

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """Committed offsets of ``group`` (only partitions it committed), read by a consumer
        of the group that never joins it.

        Not ``AdminClient.list_consumer_group_offsets``: when its OffsetFetch is answered
        NOT_COORDINATOR (a fresh broker creating ``__consumer_offsets``, a moved coordinator)
        librdkafka <= 2.16 segfaults on the admin handle's NULL consumer group (librdkafka
        #5040). A consumer re-queries the coordinator and we ask again.
        """
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka import TopicPartition as KafkaTP

        from streams.consumers import offsets_reader

        consumer = offsets_reader(
            self._bootstrap,
            group,
            **{
                "socket.timeout.ms": int(self._timeout * 1000),
                "logger": logging.getLogger("monitoring.lag.rdkafka"),
            },
        )
        transient = {
            KafkaError.NOT_COORDINATOR,
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
        }
        deadline = time.monotonic() + self._timeout
        try:
            topics = consumer.list_topics(timeout=self._timeout).topics
            wanted = [
                KafkaTP(topic, partition)
                for topic, meta in topics.items()
                if not topic.startswith("__")
                for partition in meta.partitions
            ]
            if not wanted:
                return {}
            while True:
                try:
                    answer = consumer.committed(wanted, timeout=self._timeout)
                    break
                except KafkaException as exc:
                    if exc.args[0].code() not in transient or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            consumer.close()
        return {(tp.topic, tp.partition): tp.offset for tp in answer if tp.offset > _NO_OFFSET}

    def watermarks(self, partitions: Iterable[TopicPartition]) -> Watermarks:
        """Earliest and log-end offsets (``list_offsets`` with earliest/latest specs)."""
        from confluent_kafka import TopicPartition as KafkaTP
        from confluent_kafka.admin import OffsetSpec

        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        ends = self._list_offsets(wanted, OffsetSpec.latest(), KafkaTP)
        starts = self._list_offsets(wanted, OffsetSpec.earliest(), KafkaTP)
        return {tp: (starts.get(tp, 0), ends[tp]) for tp in wanted if tp in ends}

    def _list_offsets(
        self, wanted: Sequence[TopicPartition], spec: object, make_tp: Callable[..., object]
    ) -> dict[TopicPartition, int]:
        request = {make_tp(topic, partition): spec for topic, partition in wanted}
        futures = self._admin.list_offsets(request, request_timeout=self._timeout)  # type: ignore[arg-type]
        out: dict[TopicPartition, int] = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result(timeout=self._timeout).offset
            except Exception as exc:  # a deleted topic must not hide the others' lag
                log.warning(
                    "lag.offsets_failed", topic=tp.topic, partition=tp.partition, error=str(exc)
                )
        return out


def collect_lag(
    bootstrap: str,
    groups: list[str] | None = None,
    *,
    source: OffsetSource | None = None,
    timeout_s: float = 10.0,
) -> list[LagRow]:
    """Lag of ``groups`` (``None``: every group of the cluster) on every partition they committed.

    Raises :class:`~tickcast.errors.DependencyError` when the broker does not answer. A named
    group that does not exist yields no rows.
    """
    try:
        src = source if source is not None else KafkaOffsets(bootstrap, timeout_s)
        names = src.list_groups() if groups is None else list(dict.fromkeys(groups))
        committed = {group: src.committed(group) for group in names}
        partitions = {tp for offsets in committed.values() for tp in offsets}
        marks = src.watermarks(partitions)
    except DependencyError:
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__} {exc}".strip()
        raise DependencyError(
            "kafka",
            f"cannot read offsets from {bootstrap}: {detail}",
            "is the broker up? infra/kafka/kafka.sh status",
        ) from exc
    return compute_lag(committed, marks)


class LagGauges:
    """Publishes lag rows to the Kafka gauges, removing series of partitions that went away."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._seen: set[tuple[str, str, str]] = set()
        self._seen_end: set[tuple[str, str]] = set()

    def update(self, rows: Sequence[LagRow]) -> None:
        """Set every gauge from ``rows``; drop label sets absent from them."""
        seen: set[tuple[str, str, str]] = set()
        seen_end: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.group, row.topic, str(row.partition))
            seen.add(key)
            seen_end.add((row.topic, str(row.partition)))
            self._m.kafka_lag.labels(*key).set(row.lag)
            committed = row.committed if row.committed is not None else -1
            self._m.kafka_committed_offset.labels(*key).set(committed)
            self._m.kafka_end_offset.labels(row.topic, str(row.partition)).set(row.end)
        for key in self._seen - seen:
            self._m.kafka_lag.remove(*key)
            self._m.kafka_committed_offset.remove(*key)
        for end_key in self._seen_end - seen_end:
            self._m.kafka_end_offset.remove(*end_key)
        self._seen, self._seen_end = seen, seen_end


def run_lag_exporter(
    bootstrap: str,
    groups: list[str] | None = None,
    *,
    port: int = 9308,
    addr: str = "127.0.0.1",
    interval_s: float = 15.0,
    metrics: Metrics | None = None,
    stop: threading.Event | None = None,
    source: OffsetSource | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``/metrics`` on ``port`` and refresh the lag gauges every ``interval_s`` seconds.

    Runs until ``stop`` is set (forever without one). A failed collection counts in
    ``tickcast_lag_collect_errors_total``, sets ``tickcast_dependency_up{component="kafka"}`` to
    0 and is retried at the next interval; the exporter itself never exits on broker errors.
    ``on_ready`` receives the bound port (useful with ``port=0``).
    """
    m = metrics if metrics is not None else get_metrics()
    halt = stop if stop is not None else threading.Event()
    src = source if source is not None else KafkaOffsets(bootstrap, min(interval_s, 10.0))
    gauges = LagGauges(m)
    server = serve_metrics(port, m.registry, addr)
    log.info("lag.exporter_started", port=server.port, bootstrap=bootstrap, groups=groups)
    if on_ready is not None:
        on_ready(server.port)
    try:
        while not halt.is_set():
            try:
                gauges.update(collect_lag(bootstrap, groups, source=src))
                m.set_dependency("kafka", True)
            except DependencyError as exc:
                m.lag_collect_errors.inc()
                m.set_dependency("kafka", False)
                log.warning("lag.collect_failed", error=str(exc))
            halt.wait(interval_s)
    finally:
        server.close()


def lag_table(rows: Sequence[LagRow], title: str = "consumer lag") -> Table:
    """A rich table of ``rows`` with the total lag per group in the caption."""
    table = Table(title=title)
    for name, justify in (("group", "left"), ("topic", "left"), ("partition", "right"),
                          ("committed", "right"), ("end", "right"), ("lag", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.group] = totals.get(row.group, 0) + row.lag
        style = "bold red" if row.lag > 0 else None
        committed = "-" if row.committed is None else str(row.committed)
        table.add_row(
            row.group, row.topic, str(row.partition), committed, str(row.end), str(row.lag),
            style=style,
        )  # fmt: skip
    if totals:
        table.caption = "total: " + ", ".join(f"{g}={n}" for g, n in totals.items())
    else:
        table.caption = "no committed offsets found"
    return table


def print_lag(
    bootstrap: str,
    groups: list[str] | None = None,
    *,
    console: Console | None = None,
    source: OffsetSource | None = None,
) -> list[LagRow]:
    """Collect lag once, print it as a table, and return the rows."""
    rows = collect_lag(bootstrap, groups, source=source)
    (console or Console()).print(lag_table(rows))
    return rows


def watch_lag(
    bootstrap: str,
    groups: list[str] | None = None,
    *,
    interval_s: float = 2.0,
    console: Console | None = None,
    source: OffsetSource | None = None,
    stop: threading.Event | None = None,
    iterations: int | None = None,
) -> None:
    """Refresh a lag table in the terminal every ``interval_s`` seconds until interrupted.

    Broker errors are shown in place of the table and retried; ``iterations`` bounds the loop
    (tests), ``stop`` ends it from another thread.
    """
    from rich.live import Live
    from rich.text import Text

    halt = stop if stop is not None else threading.Event()
    src = source if source is not None else KafkaOffsets(bootstrap, min(interval_s, 10.0))
    done = 0
    with Live(console=console or Console(), auto_refresh=False) as live:
        while not halt.is_set() and (iterations is None or done < iterations):
            try:
                live.update(lag_table(collect_lag(bootstrap, groups, source=src)), refresh=True)
            except DependencyError as exc:
                live.update(Text(f"{exc} — retrying", style="red"), refresh=True)
            done += 1
            if iterations is None or done < iterations:
                halt.wait(interval_s)
