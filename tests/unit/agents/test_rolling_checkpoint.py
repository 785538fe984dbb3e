"""Rolling checkpoints of the direct runner: which symbols are written, what may be committed."""

from __future__ import annotations

from collections.abc import Mapping

from agents.feature_engine import FeatureEngine, SymbolStream
from agents.feature_stage import FeatureStage, safe_offsets, spread_share
from indicators.feature_set import FeatureSet
from streams.codec import get_codec
from streams.raw_record import RawRecord
from tickcast.config import Settings
from tickcast.metrics import Metrics


class RecordingStore:
    """Stands in for the changelog store: remembers which states were enqueued."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def produce(self, symbol: str, partition: int, payload: bytes) -> None:
        self.written.append(symbol)

    def get(self, symbol: str, partition: int) -> SymbolStream | None:
        return None

    def keep(self, states: Mapping[str, SymbolStream]) -> None:
        pass


def tick(symbol: str, i: int) -> bytes:
    return get_codec("Tick").encode({
        "symbol": symbol, "ts": 1_700_000_000_000 + i, "kind": "TRADE", "price": 10.0 + i,
        "open": 10.0 + i, "high": 10.0 + i, "low": 10.0 + i, "close": 10.0 + i,
        "volume": 5.0, "source": "test", "sequence": i,
    })  # fmt: skip


def test_spread_share_is_proportional_and_takes_everything_after_a_pause() -> None:
    assert spread_share(500, 0.01, 1.0) == 5
    assert spread_share(500, 0.0101, 1.0) == 6  # rounded up: never starves
    assert spread_share(500, 3.0, 1.0) == 500
    assert spread_share(0, 1.0, 1.0) == 0
    assert spread_share(10, 0.0, 1.0) == 0


def test_safe_offsets_hold_back_to_the_first_unsnapshotted_tick() -> None:
    assert safe_offsets({0: 100, 1: 50, 2: 7}, {0: 40, 2: 9}) == {0: 40, 1: 50, 2: 7}


def test_engine_reports_each_symbols_first_changed_offset() -> None:
    engine = FeatureEngine(FeatureSet.default())
    records = [RawRecord("t", 0, o, s.encode(), tick(s, o)) for o, s in
               enumerate(["A", "B", "A", "C", "B"], start=10)]  # fmt: skip
    out = engine.process(records, lambda s, p: None, 0)
    assert out.first_offsets == {"A": 10, "B": 11, "C": 13}
    again = engine.process(records, lambda s, p: out.touched.get(s), 0)
    assert again.first_offsets == {}  # all replayed: no state changed
    assert again.skipped_replayed == len(records)


def test_rolling_snapshots_oldest_first_and_commit_bound() -> None:
    settings = Settings(checkpoint_interval_s=1.0, scoring_enabled=False)
    stage = FeatureStage(settings, FeatureEngine(FeatureSet.default()), Metrics(process=False))
    store = RecordingStore()
    stage.store = store  # type: ignore[assignment]
    symbols = ["S0", "S1", "S2", "S3"]
    batch = [RawRecord("t", 0, o, s.encode(), tick(s, o)) for o, s in enumerate(symbols)]
    out = stage.engine.process(batch, store.get, 0)
    stage.dirty.update(out.touched)
    for symbol, offset in out.first_offsets.items():
        stage.dirty_since.setdefault(symbol, offset)
    stage.last_spread = 0.0
    assert stage.snapshot_some(now=0.05) == 1  # 5 % of the interval: 5 % (rounded up)
    assert list(stage.pending) == ["S0"]
    assert store.written == []  # held until a flush has made S0's outputs durable
    # S0 is snapshotted: partition 0 may be committed up to S1's first tick.
    assert safe_offsets({0: 4}, stage._uncovered()) == {0: 1}
    # After a long pause a turn still writes at most a tenth (rounded up): no burst.
    assert [stage.snapshot_some(now=5.0 + i) for i in range(4)] == [1, 1, 1, 0]
    assert list(stage.pending) == symbols
    assert safe_offsets({0: 4}, stage._uncovered()) == {0: 4}


class OrderedIO:
    """Producer and changelog store in one: records flushes, snapshots and commits in order."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def flush_async(self, timeout: float = 30.0) -> None:
        self.log.append("flush")

    def produce(self, symbol: str, partition: int, payload: bytes) -> None:
        self.log.append(f"snapshot {symbol}")

    async def commit(self, offsets: dict[int, int]) -> None:
        self.log.append(f"commit {sorted(offsets.items())}")


def test_the_commit_rule_snapshots_after_a_flush_and_commits_only_what_they_cover() -> None:
    import asyncio

    settings = Settings(checkpoint_interval_s=1.0, scoring_enabled=False)
    stage = FeatureStage(settings, FeatureEngine(FeatureSet.default()), Metrics(process=False))
    io = OrderedIO()
    stage.producer = io  # type: ignore[assignment]
    stage.store = io  # type: ignore[assignment]
    batch = [RawRecord("t", 0, o, s.encode(), tick(s, o)) for o, s in enumerate(["A", "B"])]
    out = stage.engine.process(batch, lambda s, p: None, 0)
    stage.dirty.update(out.touched)
    stage.dirty_since.update(out.first_offsets)
    stage.handled = {0: 2}
    stage._pickle(["A"])  # B stays dirty: partition 0 may go no further than B's tick (1)

    asyncio.run(stage.checkpoint(io.commit))
    assert io.log == ["flush", "snapshot A"]  # A's outputs durable before A's snapshot
    assert stage.awaiting == {0: 1}  # committed only once that snapshot is durable too

    asyncio.run(stage.checkpoint(io.commit))
    assert io.log[2:] == ["flush", "commit [(0, 1)]"]

    asyncio.run(stage.checkpoint(io.commit, full=True))  # a clean stop: everything, at once
    assert io.log[4:] == ["flush", "commit [(0, 1)]", "snapshot B", "flush", "commit [(0, 2)]"]
