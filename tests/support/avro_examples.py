"""Realistic example records and hypothesis strategies for every tickcast schema (test helper)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z in epoch milliseconds

EXAMPLES: dict[str, dict[str, Any]] = {
    "tick": {
        "symbol": "AAPL",
        "ts": T0,
        "kind": "BAR",
        "price": 190.5,
        "open": 189.75,
        "high": 191.0,
        "low": 189.5,
        "close": 190.5,
        "volume": 1_234_567.0,
        "bid": 190.49,
        "ask": 190.51,
        "bid_size": 300.0,
        "ask_size": 200.0,
        "interval_ms": 60_000,
        "source": "replay:yahoo",
        "sequence": 42,
        "correlation_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    },
    "dead_letter": {
        "source_topic": "ticks",
        "partition": 3,
        "offset": 987_654_321,
        "key": b"AAPL",
        "payload": b"\xc3\x01garbage",
        "reason": "BAD_RANGE",
        "detail": "low 191.0 > open 190.0",
        "failed_at": T0 + 17,
        "correlation_id": "c0ffee",
        "processor": "validate",
        "event_ts": T0,
    },
    "feature_vector": {
        "symbol": "BTC-USD",
        "ts": T0,
        "feature_set_version": "fs1-3f2a9c",
        "values": [math.nan, 55.3, -0.0012, 1.5e6],
        "source_topic": "ticks",
        "source_partition": 1,
        "source_offset": 1234,
        "correlation_id": "abc123",
    },
    "prediction": {
        "symbol": "MSFT",
        "ts": T0,
        "horizon": 5,
        "prob_up": 0.57,
        "expected_return": 0.0011,
        "model_name": "xgb_direction",
        "model_version": "7",
        "role": "CHAMPION",
        "feature_set_version": "fs1-3f2a9c",
        "scoring_latency_ms": 0.42,
        "correlation_id": "abc123",
        "produced_at": T0 + 3,
        "explanation_features": ["ret_1", "rsi_14"],
        "explanation_contributions": [0.12, -0.05],
    },
    "outcome": {
        "symbol": "MSFT",
        "ts": T0,
        "horizon": 5,
        "model_name": "xgb_direction",
        "model_version": "7",
        "role": "CHALLENGER",
        "prob_up": 0.57,
        "expected_return": 0.0011,
        "realized_return": -0.0004,
        "realized_ts": T0 + 5 * 60_000,
        "hit": False,
        "loss": 0.8440,
        "strategy_return": -0.0006,
        "feature_set_version": "fs1-3f2a9c",
        "correlation_id": "abc123",
        "features": [51.2, math.nan, -0.0031, 1.5e6],
    },
    "drift_stat": {
        "feature": "rsi_14",
        "window_start": T0,
        "window_end": T0 + 3_600_000,
        "psi": 0.27,
        "ks": 0.11,
        "n": 3600,
        "reference_model_name": "xgb_direction",
        "reference_model_version": "7",
        "feature_set_version": "fs1-3f2a9c",
        "level": "ALERT",
        "symbol": None,
        "ks_pvalue": 1.2e-5,
    },
    "model_event": {
        "event_type": "PROMOTED",
        "model_name": "xgb_direction",
        "version": "8",
        "from_version": "7",
        "role": "CHAMPION",
        "reason": "challenger log loss lower, paired t-test p < 0.01, effect 0.2",
        "statistics": {"n": 5000.0, "mean_loss_diff": -0.013, "t_stat": -4.1, "p_value": 4e-5},
        "inputs": {"test": "paired_t", "alpha": "0.01", "window": "2023-11-14/2023-11-15"},
        "actor": "online_learning.promoter",
        "ts": T0,
        "correlation_id": None,
    },
    "macro_observation": {
        "series_id": "GDPC1",
        "value": 14_355.6,
        "reference_period": "2009-07-01",
        "published_at": 1_256_817_600_000,  # 2009-10-29T12:00Z, the advance estimate
        "source": "fred:GDPC1",
    },
    "news_item": {
        "symbols": ["AAPL", "MSFT"],
        "headline": "Apple and Microsoft beat estimates",
        "source": "fixture",
        "published_at": T0,
        "id": None,
    },
}

_ts = st.integers(min_value=0, max_value=4_102_444_800_000)  # up to 2100-01-01
_text = st.text(max_size=24)
_opt_text = st.none() | _text
_finite = st.floats(allow_nan=False, allow_infinity=False)
_any_float = st.floats()  # NaN and infinities round-trip through Avro doubles too
_opt_float = st.none() | _any_float
_long = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_int = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_role = st.sampled_from(["CHAMPION", "CHALLENGER", "SHADOW"])


@st.composite
def _tick(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["TRADE", "BAR"]))
    price = draw(st.floats(min_value=1e-6, max_value=1e7))
    if kind == "TRADE":
        o = h = lo = price
        interval = None
    else:
        o, lo, h = draw(st.floats(1e-6, 1e7)), price * 0.99, price * 1.01
        interval = draw(st.sampled_from([1_000, 60_000, 86_400_000]))
    return {
        "symbol": draw(st.text(min_size=1, max_size=12)),
        "ts": draw(_ts),
        "kind": kind,
        "price": price,
        "open": o,
        "high": h,
        "low": lo,
        "close": price,
        "volume": draw(st.floats(min_value=0, max_value=1e12)),
        "bid": draw(_opt_float),
        "ask": draw(_opt_float),
        "bid_size": draw(_opt_float),
        "ask_size": draw(_opt_float),
        "interval_ms": interval,
        "source": draw(_text),
        "sequence": draw(st.none() | _long),
        "correlation_id": draw(_opt_text),
    }


STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "tick": _tick(),
    "dead_letter": st.fixed_dictionaries(
        {
            "source_topic": _text,
            "partition": _int,
            "offset": _long,
            "key": st.none() | st.binary(max_size=16),
            "payload": st.binary(max_size=64),
            "reason": st.sampled_from(
                [
                    "UNDECODABLE",
                    "SCHEMA_MISMATCH",
                    "BAD_PRICE",
                    "BAD_RANGE",
                    "NEGATIVE_VOLUME",
                    "DUPLICATE",
                    "OUT_OF_ORDER",
                    "OUTLIER_RETURN",
                    "UNKNOWN_SYMBOL",
                    "OTHER",
                    "FUTURE_TIMESTAMP",
                    "KEY_MISMATCH",
                    "BAD_SYMBOL",
                ]
            ),
            "detail": _text,
            "failed_at": _ts,
            "correlation_id": _opt_text,
            "processor": _opt_text,
            "event_ts": st.none() | _ts,
        }
    ),
    "feature_vector": st.fixed_dictionaries(
        {
            "symbol": _text,
            "ts": _ts,
            "feature_set_version": _text,
            "values": st.lists(_any_float, max_size=40),
            "source_topic": _opt_text,
            "source_partition": st.none() | _int,
            "source_offset": st.none() | _long,
            "correlation_id": _opt_text,
        }
    ),
    "prediction": st.fixed_dictionaries(
        {
            "symbol": _text,
            "ts": _ts,
            "horizon": st.integers(1, 500),
            "prob_up": st.floats(0, 1),
            "expected_return": _finite,
            "model_name": _text,
            "model_version": _text,
            "role": _role,
            "feature_set_version": _text,
            "scoring_latency_ms": st.floats(0, 1e4),
            "correlation_id": _opt_text,
            "produced_at": _ts,
            "explanation_features": st.none() | st.lists(_text, max_size=5),
            "explanation_contributions": st.none() | st.lists(_finite, max_size=5),
        }
    ),
    "outcome": st.fixed_dictionaries(
        {
            "symbol": _text,
            "ts": _ts,
            "horizon": st.integers(1, 500),
            "model_name": _text,
            "model_version": _text,
            "role": _role,
            "prob_up": st.floats(0, 1),
            "expected_return": _finite,
            "realized_return": _finite,
            "realized_ts": _ts,
            "hit": st.booleans(),
            "loss": st.floats(0, 50),
            "strategy_return": _finite,
            "feature_set_version": _opt_text,
            "correlation_id": _opt_text,
            "features": st.none() | st.lists(_any_float, max_size=40),
        }
    ),
    "drift_stat": st.fixed_dictionaries(
        {
            "feature": _text,
            "window_start": _ts,
            "window_end": _ts,
            "psi": st.floats(0, 10),
            "ks": _opt_float,
            "n": st.integers(0, 2**40),
            "reference_model_name": _text,
            "reference_model_version": _text,
            "feature_set_version": _text,
            "level": st.sampled_from(["OK", "WARN", "ALERT"]),
            "symbol": _opt_text,
            "ks_pvalue": _opt_float,
        }
    ),
    "model_event": st.fixed_dictionaries(
        {
            "event_type": st.sampled_from(
                ["REGISTERED", "PROMOTED", "ROLLED_BACK", "REJECTED", "CHECKPOINT"]
            ),
            "model_name": _text,
            "version": _text,
            "from_version": _opt_text,
            "role": _role,
            "reason": _text,
            "statistics": st.dictionaries(_text, _any_float, max_size=6),
            "inputs": st.dictionaries(_text, _text, max_size=6),
            "actor": _text,
            "ts": _ts,
            "correlation_id": _opt_text,
        }
    ),
    "macro_observation": st.fixed_dictionaries(
        {
            "series_id": _text,
            "value": _any_float,
            "reference_period": _text,
            "published_at": _ts,
            "source": _text,
        }
    ),
    "news_item": st.fixed_dictionaries(
        {
            "symbols": st.lists(_text, max_size=4),
            "headline": _text,
            "source": _text,
            "published_at": _ts,
            "id": _opt_text,
        }
    ),
}


def same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN (Avro doubles carry NaN unchanged)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
