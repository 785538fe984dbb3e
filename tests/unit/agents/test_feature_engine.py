"""The pure feature engine: decode, validate, featurise; bad records never stop a batch."""

from __future__ import annotations

import math
from typing import Any

import pytest

from agents.feature_engine import FeatureEngine, SymbolStream
from agents.records import RawRecord
from indicators.bar import Bar
from indicators.feature_set import FeatureSet
from streams.codec import get_codec

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


def raw(records: list[dict[str, Any] | bytes], partition: int = 0) -> list[RawRecord]:
    out = []
    for offset, r in enumerate(records):
        if isinstance(r, bytes):
            out.append(RawRecord("ticks", partition, offset, b"X", r))
        else:
            out.append(RawRecord("ticks", partition, offset, r["symbol"].encode(), CODEC.encode(r)))
    return out


def run(engine: FeatureEngine, records: list[RawRecord], states: dict[str, SymbolStream]):  # type: ignore[no-untyped-def]
    out = engine.process(records, lambda s, p: states.get(s), now_ms=0)
    states.update(out.touched)
    return out


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
