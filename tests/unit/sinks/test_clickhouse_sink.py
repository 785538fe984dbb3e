"""BatchingSink: size/time triggers, retries with backoff, bounded buffer, offsets."""

from __future__ import annotations

import random

import pytest

from sinks.clickhouse_sink import BatchingSink, RetryPolicy, SinkBatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class MemorySink(BatchingSink):
    """Writes into a list; fails while ``down`` is true."""

    def __init__(self, clock: Clock, **kw: object) -> None:
        super().__init__("mem", clock=clock, rng=random.Random(1), **kw)  # type: ignore[arg-type]
        self.written: list[tuple] = []
        self.calls = 0
        self.down = False

    def write(self, batch: SinkBatch) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("clickhouse down")
        self.written.extend(zip(*batch.columns(), strict=True))


def test_size_trigger_writes_one_batch_and_reports_offsets() -> None:
    clock = Clock()
    sink = MemorySink(clock, batch_rows=3, batch_interval_s=10)
    for i in range(2):
        sink.add((i, "a"), "t", 0, 100 + i)
    assert sink.flush() is None
    assert sink.calls == 0
    sink.add((2, "b"), "t", 1, 7)
    batch = sink.flush()
    assert batch is not None
    assert batch.offsets == {("t", 0): 101, ("t", 1): 7}
    assert sink.written == [(0, "a"), (1, "a"), (2, "b")]
    assert sink.pending_rows == 0
    assert sink.flush() is None


def test_time_trigger() -> None:
    clock = Clock()
    sink = MemorySink(clock, batch_rows=1000, batch_interval_s=1.0)
    sink.add((1,), "t", 0, 0)
    clock.now = 0.99
    assert sink.flush() is None
    clock.now = 1.0
    assert sink.flush() is not None
    assert sink.written == [(1,)]


def test_skipped_records_are_covered_without_a_write() -> None:
    clock = Clock()
    sink = MemorySink(clock, batch_rows=10, batch_interval_s=0.5)
    sink.add(None, "t", 3, 41)
    clock.now = 1
    batch = sink.flush()
    assert batch is not None
    assert batch.offsets == {("t", 3): 41}
    assert sink.calls == 0


def test_failures_back_off_keep_rows_and_recover() -> None:
    clock = Clock()
    sink = MemorySink(
        clock, batch_rows=2, batch_interval_s=1, retry=RetryPolicy(base_s=1.0, max_s=8.0)
    )
    sink.down = True
    sink.add((1,), "t", 0, 0)
    sink.add((2,), "t", 0, 1)
    assert sink.flush() is None
    assert sink.calls == 1
    assert sink.flush() is None
    assert sink.calls == 1
    waits = []
    for _ in range(5):
        waits.append(sink.next_attempt - clock.now)
        clock.now = sink.next_attempt
        assert sink.flush() is None
    assert sink.calls == 6
    assert sink.pending_rows == 2
    assert waits[0] <= 1.0
    assert waits[-1] >= 4.0
    assert all(w <= 8.0 for w in waits)
    sink.down = False
    clock.now = sink.next_attempt
    batch = sink.flush()
    assert batch is not None
    assert sink.written == [(1,), (2,)]
    assert sink.failures == 0


def test_full_is_the_back_pressure_signal() -> None:
    clock = Clock()
    sink = MemorySink(clock, batch_rows=2, batch_interval_s=1, max_buffer_rows=4)
    sink.down = True
    for i in range(4):
        assert not sink.full
        sink.add((i,), "t", 0, i)
    assert sink.full


def test_drop_buffer_forgets_rows_and_offsets() -> None:
    sink = MemorySink(Clock(), batch_rows=2)
    sink.add((1,), "t", 0, 0)
    sink.drop_buffer()
    assert sink.flush(force=True) is None
    assert sink.pending_rows == 0


@pytest.mark.parametrize("attempt", [1, 2, 5, 50])
def test_retry_delay_bounds(attempt: int) -> None:
    policy = RetryPolicy(base_s=0.5, max_s=10.0)
    ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
    for seed in range(20):
        delay = policy.delay(attempt, random.Random(seed))
        assert ceiling / 2 <= delay <= ceiling
