"""The benchmark's peer apps run the worker's work: their transform equals the engine's.

``benchmarks/peers/transform.py`` is what the Quix Streams and Bytewax apps call per tick
(they run in their own virtualenvs, so only the transform is imported here). Fed the same
records one at a time, with the state handed around as each framework does (a dict, or
pickled between ticks as Quix's ``State`` store does), it must give
:class:`agents.feature_engine.FeatureEngine`'s values, refusals and skips, and write the
same Redis blob.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from agents.feature_engine import FeatureEngine, SymbolStream
from benchmarks.peers.transform import Features, Outcome, PeerTransform, Refusal
from indicators.feature_sets import feature_set
from sinks.feature_blob import decode, encode
from streams.codec import get_codec
from streams.raw_record import RawRecord

CODEC = get_codec("Tick")
NOW = 1_700_000_100_000


def tick(symbol: str, ts: int, close: float, rng: np.random.Generator) -> dict[str, Any]:
    spread = float(rng.uniform(0.001, 0.01)) * close
    return {
        "symbol": symbol,
        "ts": ts,
        "kind": "BAR",
        "price": close,
        "open": close * float(1 + rng.normal(0, 0.002)),
        "high": close + spread,
        "low": close - spread,
        "close": close,
        "volume": float(rng.integers(100, 10_000)),
        "bid": close - spread / 2,
        "ask": close + spread / 2,
        "bid_size": 300.0,
        "ask_size": 200.0,
        "source": "test",
        "sequence": None,
        "correlation_id": f"{symbol}-{ts}",
    }


def records() -> list[RawRecord]:
    """Three symbols interleaved past every warm-up, with hostile records among them."""
    rng = np.random.default_rng(7)
    prices = {"AAA": 10.0, "BBB": 250.0, "C.D": 3.5}
    out: list[RawRecord] = []

    def add(key: bytes | None, value: bytes | None) -> None:
        out.append(RawRecord("ticks", 0, len(out), key, value))

    for i in range(90):
        for symbol in prices:
            prices[symbol] *= float(np.exp(rng.normal(0, 0.01)))
            add(
                symbol.encode(),
                CODEC.encode(tick(symbol, 1_700_000_000_000 + 60_000 * i, prices[symbol], rng)),
            )
        if i == 30:
            add(b"AAA", b"garbage")
            add(b"AAA", None)
            add(b"BBB", CODEC.encode(tick("AAA", 1_700_000_000_000 + 60_000 * i + 1, 10.0, rng)))
            add(b"bad symbol", CODEC.encode(tick("bad symbol", 1_700_000_000_000, 1.0, rng)))
            add(b"AAA", CODEC.encode(tick("AAA", 1_700_000_000_000, 10.0, rng)))  # out of order
        if i == 50:
            bad = tick("BBB", 1_700_000_000_000 + 60_000 * i + 1, 250.0, rng)
            bad["close"] = -1.0
            add(b"BBB", CODEC.encode(bad))
            # only validation sees these two: a tick from tomorrow, a 3x jump in one minute
            add(b"C.D", CODEC.encode(tick("C.D", NOW + 86_400_000, prices["C.D"], rng)))
            jump = tick("AAA", 1_700_000_000_000 + 60_000 * i + 1, prices["AAA"] * 3, rng)
            add(b"AAA", CODEC.encode(jump))
    return out


def expected(
    name: str, batch_size: int, vector: bool = False
) -> tuple[list[Outcome], FeatureEngine]:
    """Per record, what the engine made of it (its batches of ``batch_size``; ``vector``:
    the worker's classic columns, indicators.columns)."""
    engine = FeatureEngine(feature_set(name))
    if vector:
        engine.vectorise_classic()
    states: dict[str, SymbolStream] = {}
    results: list[Outcome] = []
    recs = records()
    for start in range(0, len(recs), batch_size):
        batch = recs[start : start + batch_size]
        out = engine.process(batch, lambda s, _p: states.get(s), NOW)
        states.update(out.touched)
        by_offset: dict[int, Outcome] = {
            f["source_offset"]: Features(f["symbol"], f["ts"], f["values"]) for f in out.features
        }
        by_offset.update({d["offset"]: Refusal(d["reason"], d["detail"]) for d in out.dead_letters})
        results.extend(by_offset.get(r.offset) for r in batch)
    return results, engine


def run_peer(name: str, pickled: bool) -> list[Outcome]:
    transform = PeerTransform(name)
    states: dict[bytes | None, Any] = {}
    results: list[Outcome] = []
    for r in records():
        state = states.get(r.key)
        if pickled and state is not None:
            state = pickle.loads(state)
        state, outcome = transform.step(state, r.key, r.value, r.partition, r.offset, NOW)
        states[r.key] = pickle.dumps(state) if pickled and state is not None else state
        results.append(outcome)
    return results


def same(a: Outcome, b: Outcome) -> bool:
    if isinstance(a, Features) and isinstance(b, Features):
        return (a.symbol, a.ts, len(a.values)) == (b.symbol, b.ts, len(b.values)) and all(
            (math.isnan(x) and math.isnan(y)) or x == y
            for x, y in zip(a.values, b.values, strict=True)
        )
    if isinstance(a, Refusal) and isinstance(b, Refusal):
        return a.reason == b.reason
    return a is None and b is None


@pytest.mark.parametrize("name", ["classic", "alpha158"])
@pytest.mark.parametrize("pickled", [False, True], ids=["dict", "store"])
@pytest.mark.parametrize("vector", [False, True], ids=["per_symbol", "columns"])
def test_the_peer_transform_computes_what_the_engine_computes(
    name: str, pickled: bool, vector: bool
) -> None:
    want, engine = expected(name, batch_size=64, vector=vector)
    if vector and name == "classic":
        assert engine.classic is not None
        assert engine.classic.row_of, "warm symbols are rows of the columns"
    got = run_peer(name, pickled)
    assert len(got) == len(want)
    mismatches = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not same(g, w)]
    assert mismatches == []
    reasons = [w.reason for w in want if isinstance(w, Refusal)]
    assert reasons == [
        "UNDECODABLE", "UNDECODABLE", "KEY_MISMATCH", "BAD_SYMBOL", "OUT_OF_ORDER", "BAD_PRICE",
        "FUTURE_TIMESTAMP", "OUTLIER_RETURN",
    ]  # fmt: skip
    ready = [w for w in want if isinstance(w, Features) and not any(map(math.isnan, w.values))]
    assert ready, "past the warm-up every feature is a number"
    assert PeerTransform(name).version == engine.version


def test_a_redelivered_record_is_skipped_as_the_engine_skips_it() -> None:
    transform = PeerTransform("classic")
    first = records()[0]
    state, outcome = transform.step(None, first.key, first.value, 0, first.offset, NOW)
    assert isinstance(outcome, Features)
    again, repeat = transform.step(state, first.key, first.value, 0, first.offset, NOW)
    assert repeat is None
    assert again is state


def test_the_peers_redis_blob_is_the_workers() -> None:
    transform = PeerTransform("classic")
    want, engine = expected("classic", batch_size=500)
    latest = {w.symbol: w for w in want if isinstance(w, Features)}
    blobs = transform.blobs(latest, NOW)
    for symbol, features in latest.items():
        assert blobs[symbol] == encode(features.ts, NOW, engine.version, features.values)
        assert decode(blobs[symbol]).feature_set_version == engine.version
