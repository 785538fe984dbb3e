"""The pure feature engine: decode, validate, featurise; bad records never stop a batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from agents.feature_engine import BatchOutput, FeatureEngine, SymbolStream
from indicators.bar import Bar
from indicators.feature_set import FeatureSet
from streams.codec import get_codec
from streams.raw_record import RawRecord
from streams.validation import ValidationRules

CODEC = get_codec("Tick")


def tick(symbol: str, ts: int, price: float, **extra: Any) -> dict[str, Any]:
    record = {
        "symbol": symbol,
        "ts": ts,
        "kind": "TRADE",
        "price": price,
        "open": price,
        "high": price,
        "low": price,
        "close": price,
        "volume": 100.0,
        "source": "test",
        "sequence": None,
        "correlation_id": f"{symbol}-{ts}",
    }
    record.update(extra)
    return record


def raw(records: Sequence[dict[str, Any] | bytes], partition: int = 0) -> list[RawRecord]:
    out = []
    for offset, r in enumerate(records):
        if isinstance(r, bytes):
            out.append(RawRecord("ticks", partition, offset, b"X", r))
        else:
            out.append(RawRecord("ticks", partition, offset, r["symbol"].encode(), CODEC.encode(r)))
    return out


def run(
    engine: FeatureEngine,
    records: list[RawRecord],
    states: dict[str, SymbolStream],
    now_ms: int = 0,
) -> BatchOutput:
    out = engine.process(records, lambda s, p: states.get(s), now_ms=now_ms)
    states.update(out.touched)
    return out


def keyed(record: dict[str, Any], key: bytes | None, offset: int, partition: int = 0) -> RawRecord:
    return RawRecord("ticks", partition, offset, key, CODEC.encode(record))


def test_values_equal_the_feature_set_and_bad_records_become_dead_letters() -> None:
    engine = FeatureEngine(FeatureSet.default())
    good = [tick("AAA", 1_000 + i, 10.0 + 0.1 * i) for i in range(80)]
    bad = [
        b"garbage",
        tick("BBB", 5, float("nan")),
        tick("AAA", 500, 10.0),  # older than AAA's last event time
        tick("CCC", 5, 10.0, high=9.0, low=11.0),
    ]
    out = run(engine, raw(good + bad), {})
    reference = FeatureSet.default().new_state()
    want = [
        reference.update(Bar(r["ts"], r["open"], r["high"], r["low"], r["close"], 100.0))
        for r in good
    ]
    got = [r["values"] for r in out.features]
    assert len(got) == len(want)
    assert all(
        all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )
    assert [d["reason"] for d in out.dead_letters] == [
        "UNDECODABLE",
        "BAD_PRICE",
        "OUT_OF_ORDER",
        "BAD_RANGE",
    ]
    assert all(d["payload"] for d in out.dead_letters)


def test_trades_in_the_same_millisecond_are_features_not_errors() -> None:
    engine = FeatureEngine(FeatureSet.default())
    out = run(engine, raw([tick("AAA", 7, 10.0), tick("AAA", 7, 10.01), tick("AAA", 7, 10.02)]), {})
    assert len(out.features) == 3
    assert not out.dead_letters


def test_redelivered_offsets_are_skipped_not_counted_twice() -> None:
    engine = FeatureEngine(FeatureSet.default())
    states: dict[str, SymbolStream] = {}
    batch = raw([tick("AAA", 1_000 + i, 10.0 + i) for i in range(5)])
    run(engine, batch, states)
    replay = run(engine, batch, states)
    assert replay.skipped_replayed == 5
    assert not replay.features


@pytest.mark.parametrize("payload", [b"", b"\xc3\x01" + b"\x00" * 8, b"\x00" * 40])
def test_garbage_never_raises(payload: bytes) -> None:
    out = run(FeatureEngine(FeatureSet.default()), raw([payload]), {})
    assert out.dead_letters[0]["reason"] in {"UNDECODABLE", "SCHEMA_MISMATCH"}


# --- hostile input: a tick from 2100, keyless or mis-keyed records, garbage symbols ----------

NOW = 1_700_000_000_000
Y2100 = 4_102_444_800_000  # 2100-01-01T00:00:00Z
DAY = 86_400_000


def same(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


def test_a_tick_from_2100_is_refused_and_the_symbol_does_not_freeze() -> None:
    good = [tick("AAA", NOW - 60_000 * (30 - i), 10.0 + 0.1 * i) for i in range(30)]
    later = [tick("AAA", NOW + 60_000 * i, 13.0 + 0.1 * i) for i in range(1, 4)]
    engine, states = FeatureEngine(FeatureSet.default()), dict[str, SymbolStream]()
    out = run(engine, raw([*good, tick("AAA", Y2100, 12.0), *later]), states, now_ms=NOW)
    assert [(d["reason"], d["event_ts"]) for d in out.dead_letters] == [("FUTURE_TIMESTAMP", Y2100)]
    assert states["AAA"].guard.last_ts == states["AAA"].last_ts == later[-1]["ts"]
    assert engine.partition_latest == {0: later[-1]["ts"]}
    clean = run(FeatureEngine(FeatureSet.default()), raw([*good, *later]), {}, now_ms=NOW)
    assert [r["ts"] for r in out.features] == [r["ts"] for r in clean.features]
    assert all(
        same(a["values"], b["values"]) for a, b in zip(out.features, clean.features, strict=True)
    )


def test_future_bound_is_inclusive_and_the_partition_clock_counts() -> None:
    engine, states = FeatureEngine(FeatureSet.default()), dict[str, SymbolStream]()
    skew = engine.rules.max_future_skew_ms
    out = run(engine, [keyed(tick("AAA", NOW + skew, 10.0), b"AAA", 0)], states, now_ms=NOW)
    assert not out.dead_letters
    # The wall clock stands still (or lags): the partition's latest event time is the reference.
    ahead = [
        keyed(tick("BBB", NOW + 2 * skew, 10.0), b"BBB", 1),
        keyed(tick("CCC", NOW + 3 * skew, 10.0), b"CCC", 2),
        keyed(tick("DDD", NOW + 4 * skew + 1, 10.0), b"DDD", 3),
    ]
    out = run(engine, ahead, states, now_ms=NOW)
    assert [d["reason"] for d in out.dead_letters] == ["FUTURE_TIMESTAMP"]
    assert out.dead_letters[0]["event_ts"] == NOW + 4 * skew + 1
    assert "DDD" in out.touched  # a validation reject: the state is loaded, its guard untouched
    assert states["DDD"].guard.last_ts == -1
    assert engine.partition_latest == {0: NOW + 3 * skew}
    # Another partition has its own clock; the wall clock catches up after a quiet night.
    elsewhere = [keyed(tick("EEE", NOW + 2 * skew, 10.0), b"EEE", 0, partition=1)]
    other = run(engine, elsewhere, states, now_ms=NOW)
    assert [d["reason"] for d in other.dead_letters] == ["FUTURE_TIMESTAMP"]
    assert 1 not in engine.partition_latest
    morning = run(engine, [keyed(tick("AAA", NOW + DAY, 10.0), b"AAA", 3)], states, NOW + DAY)
    assert not morning.dead_letters


def test_partition_clock_is_raised_from_a_loaded_state() -> None:
    first, states = FeatureEngine(FeatureSet.default()), dict[str, SymbolStream]()
    run(first, [keyed(tick("AAA", NOW + DAY, 10.0), b"AAA", 0)], states, now_ms=NOW + DAY)
    restarted = FeatureEngine(FeatureSet.default())  # e.g. after a rebalance: states from the store
    out = run(restarted, [keyed(tick("AAA", NOW + DAY + 60_000, 10.1), b"AAA", 1)], states, NOW)
    assert not out.dead_letters
    assert restarted.partition_latest == {0: NOW + DAY + 60_000}


def test_replay_gap_catches_a_later_year_in_a_replay_of_history() -> None:
    y2010, y2015 = 1_262_304_000_000, 1_420_070_400_000
    rules = ValidationRules(replay_max_gap_ms=7 * DAY)
    bars = [tick("AAA", y2010 + i * DAY, 10.0 + i * 0.01) for i in range(5)]
    bars += [tick("AAA", y2015, 10.1), tick("AAA", y2010 + 5 * DAY + 6 * DAY, 10.1)]
    out = run(FeatureEngine(FeatureSet.default(), rules), raw(bars), {}, now_ms=NOW)
    assert [(d["reason"], d["event_ts"]) for d in out.dead_letters] == [("FUTURE_TIMESTAMP", y2015)]
    assert len(out.features) == 6
    off = run(FeatureEngine(FeatureSet.default()), raw(bars), {}, now_ms=NOW)  # default: no bound
    assert [d["reason"] for d in off.dead_letters] == ["OUT_OF_ORDER"]


def _refused_without_state(records: list[RawRecord]) -> BatchOutput:
    loaded: list[str] = []
    engine = FeatureEngine(FeatureSet.default())
    out = engine.process(records, lambda s, p: loaded.append(s), now_ms=NOW)
    assert loaded == []
    assert out.touched == {}
    assert out.first_offsets == {}
    assert not out.features
    assert engine.partition_latest == {}
    return out


def test_keyless_and_mis_keyed_records_are_key_mismatch_and_touch_no_state() -> None:
    out = _refused_without_state(
        [keyed(tick("AAA", NOW, 10.0), None, 0), keyed(tick("AAA", NOW, 10.0), b"BBB", 1)]
    )
    assert [(d["reason"], d["key"]) for d in out.dead_letters] == [
        ("KEY_MISMATCH", None),
        ("KEY_MISMATCH", b"BBB"),
    ]
    assert out.dead_letters[0]["event_ts"] == NOW
    assert all(d["payload"] for d in out.dead_letters)


@pytest.mark.parametrize("symbol", ["X" * 33, "X" * 10_000, "aapl", "", "AAPL\n"])
def test_bad_symbols_are_refused_before_any_state(symbol: str) -> None:
    records = [
        keyed(tick(symbol, NOW, 10.0), symbol.encode(), 0),  # keyed by its symbol
        keyed(tick(symbol, NOW, 10.0), None, 1),  # also keyless: BAD_SYMBOL is checked first
    ]
    out = _refused_without_state(records)
    assert [d["reason"] for d in out.dead_letters] == ["BAD_SYMBOL", "BAD_SYMBOL"]
    assert all(len(d["detail"]) < 200 for d in out.dead_letters)


def test_good_records_around_refused_ones_keep_their_offsets() -> None:
    records = [
        keyed(tick("AAA", NOW, 10.0), None, 0),
        keyed(tick("aaa", NOW, 10.0), b"aaa", 1),
        keyed(tick("AAA", NOW, 10.0), b"AAA", 2),
        keyed(tick("AAA", NOW + 1, 10.1), b"X", 3),
    ]
    out = run(FeatureEngine(FeatureSet.default()), records, {}, now_ms=NOW)
    assert [d["reason"] for d in out.dead_letters] == ["KEY_MISMATCH", "BAD_SYMBOL", "KEY_MISMATCH"]
    assert out.first_offsets == {"AAA": 2}
    assert out.touched["AAA"].last_offset == 2
    assert len(out.features) == 1
