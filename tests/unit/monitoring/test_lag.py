"""Consumer-lag arithmetic, collection, gauges, exporter loop and terminal views (fake broker)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from monitoring.lag import (
    LagGauges,
    LagRow,
    collect_lag,
    compute_lag,
    lag_table,
    print_lag,
    run_lag_exporter,
    watch_lag,
)
from tickcast.errors import DependencyError
from tickcast.metrics import Metrics

TP = tuple[str, int]


class FakeOffsets:
    """An in-memory OffsetSource."""

    def __init__(
        self,
        committed: dict[str, dict[TP, int]],
        marks: dict[TP, tuple[int, int]],
        fail: bool = False,
    ) -> None:
        self.committed_by_group = committed
        self.marks = marks
        self.fail = fail
        self.asked: list[str] = []

    def list_groups(self) -> list[str]:
        if self.fail:
            raise RuntimeError("broker transport failure")
        return sorted(self.committed_by_group)

    def committed(self, group: str) -> dict[TP, int]:
        self.asked.append(group)
        return dict(self.committed_by_group.get(group, {}))

    def watermarks(self, partitions: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        return {tp: self.marks[tp] for tp in partitions if tp in self.marks}


def _source() -> FakeOffsets:
    return FakeOffsets(
        committed={
            "tickcast": {("ticks", 0): 90, ("ticks", 1): 100, ("features", 0): -1001},
            "audit": {("ticks", 0): 10, ("gone", 0): 5},
        },
        marks={("ticks", 0): (0, 100), ("ticks", 1): (0, 100), ("features", 0): (20, 50)},
    )


def test_compute_lag_matches_a_reference() -> None:
    src = _source()
    rows = compute_lag(src.committed_by_group, src.marks)
    # Reference: end - committed, or end - earliest without a commit; unknown partitions dropped.
    expected = []
    for group, offsets in src.committed_by_group.items():
        for tp, off in offsets.items():
            if tp in src.marks:
                low, high = src.marks[tp]
                expected.append((group, *tp, high - (off if off >= 0 else low)))
    assert sorted((r.group, r.topic, r.partition, r.lag) for r in rows) == sorted(expected)
    assert [(r.group, r.topic, r.partition) for r in rows] == sorted(
        (r.group, r.topic, r.partition) for r in rows
    )
    no_commit = next(r for r in rows if r.topic == "features")
    assert no_commit.committed is None
    assert no_commit.lag == 30


def test_compute_lag_is_never_negative() -> None:
    rows = compute_lag({"g": {("t", 0): 12}}, {("t", 0): (0, 10)})
    assert rows == [LagRow("g", "t", 0, 12, 10, 0)]


def test_collect_lag_all_groups_or_named_ones() -> None:
    src = _source()
    everyone = collect_lag("unused:1", None, source=src)
    assert {r.group for r in everyone} == {"tickcast", "audit"}
    src.asked.clear()
    named = collect_lag("unused:1", ["tickcast", "tickcast", "missing"], source=src)
    assert src.asked == ["tickcast", "missing"]
    assert {(r.topic, r.partition): r.lag for r in named} == {
        ("features", 0): 30,
        ("ticks", 0): 10,
        ("ticks", 1): 0,
    }


def test_collect_lag_turns_broker_failures_into_dependency_errors() -> None:
    with pytest.raises(DependencyError, match="kafka") as info:
        collect_lag("127.0.0.1:1", None, source=FakeOffsets({}, {}, fail=True))
    assert info.value.component == "kafka"


def test_gauges_are_set_and_stale_series_removed() -> None:
    m = Metrics(process=False)
    gauges = LagGauges(m)
    gauges.update([LagRow("g", "t", 0, 5, 8, 3), LagRow("g", "t", 1, None, 4, 4)])
    assert m.value("kafka_consumergroup_lag", group="g", topic="t", partition="0") == 3
    assert (
        m.value("kafka_consumergroup_committed_offset", group="g", topic="t", partition="1") == -1
    )
    assert m.value("kafka_topic_partition_end_offset", topic="t", partition="1") == 4
    gauges.update([LagRow("g", "t", 0, 8, 8, 0)])
    assert m.value("kafka_consumergroup_lag", group="g", topic="t", partition="0") == 0
    assert m.value("kafka_consumergroup_lag", group="g", topic="t", partition="1") is None
    assert m.value("kafka_topic_partition_end_offset", topic="t", partition="1") is None


def _run_exporter(m: Metrics, src: FakeOffsets) -> tuple[threading.Thread, threading.Event, int]:
    stop, ready = threading.Event(), threading.Event()
    port: list[int] = []

    def on_ready(bound: int) -> None:
        port.append(bound)
        ready.set()

    thread = threading.Thread(
        target=run_lag_exporter,
        args=("unused:1", None),
        kwargs={"port": 0, "addr": "127.0.0.1", "interval_s": 0.05, "metrics": m,
                "stop": stop, "source": src, "on_ready": on_ready},
        daemon=True,
    )  # fmt: skip
    thread.start()
    assert ready.wait(10)
    return thread, stop, port[0]


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


def test_exporter_serves_lag_gauges() -> None:
    m = Metrics(process=False)
    thread, stop, port = _run_exporter(m, _source())
    try:
        for _ in range(200):  # the first collection may still be running
            if m.value("tickcast_dependency_up", component="kafka") == 1:
                break
            threading.Event().wait(0.02)
        samples = _scrape(port)
    finally:
        stop.set()
        thread.join(10)
    key = (
        "kafka_consumergroup_lag",
        (("group", "tickcast"), ("partition", "0"), ("topic", "ticks")),
    )
    assert samples[key] == 10
    assert samples[("tickcast_dependency_up", (("component", "kafka"),))] == 1
    assert not thread.is_alive()


def test_exporter_survives_broker_failures() -> None:
    m = Metrics(process=False)
    src = FakeOffsets({}, {}, fail=True)
    thread, stop, _ = _run_exporter(m, src)
    try:
        for _ in range(500):
            if (m.value("tickcast_lag_collect_errors_total") or 0) >= 2:
                break
            threading.Event().wait(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert (m.value("tickcast_lag_collect_errors_total") or 0) >= 2
    assert m.value("tickcast_dependency_up", component="kafka") == 0


def _console() -> Console:
    return Console(record=True, width=120, force_terminal=False, color_system=None)


def test_lag_table_and_print_lag() -> None:
    console = _console()
    rows = print_lag("unused:1", ["tickcast"], console=console, source=_source())
    text = console.export_text()
    assert len(rows) == 3
    assert "features" in text
    assert "total: tickcast=40" in text
    empty = _console()
    empty.print(lag_table([]))
    assert "no committed offsets found" in empty.export_text()


def test_watch_lag_refreshes_and_shows_errors() -> None:
    console = _console()
    watch_lag("unused:1", None, interval_s=0.0, console=console, source=_source(), iterations=2)
    assert "total: audit=90, tickcast=40" in console.export_text()
    failing = _console()
    watch_lag("x:1", None, interval_s=0.0, console=failing, source=FakeOffsets({}, {}, True),
              iterations=1)  # fmt: skip
    assert "retrying" in failing.export_text()
