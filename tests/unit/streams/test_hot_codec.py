"""The hand-written hot-path codecs give exactly what fastavro (the AvroCodec) gives."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import get_codec
from streams.hot_codec import OutcomeEncoder, PredictionEncoder, TickDecoder, varint
from tickcast.errors import SchemaError

TICK = get_codec("Tick")
PREDICTION = get_codec("Prediction")
OUTCOME = get_codec("Outcome")
DECODER = TickDecoder()
PRED_ENCODER = PredictionEncoder()
OUTCOME_ENCODER = OutcomeEncoder()

longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
doubles = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text(max_size=24)

ticks = st.fixed_dictionaries(
    {
        "symbol": texts,
        "ts": longs,
        "kind": st.sampled_from(["TRADE", "BAR"]),
        "price": doubles,
        "open": doubles,
        "high": doubles,
        "low": doubles,
        "close": doubles,
        "volume": doubles,
        "bid": st.none() | doubles,
        "ask": st.none() | doubles,
        "bid_size": st.none() | doubles,
        "ask_size": st.none() | doubles,
        "interval_ms": st.none() | longs,
        "source": texts,
        "sequence": st.none() | longs,
        "correlation_id": st.none() | texts,
    }
)
roles = st.sampled_from(["CHAMPION", "CHALLENGER", "SHADOW"])
predictions = st.fixed_dictionaries(
    {
        "symbol": texts,
        "ts": longs,
        "horizon": ints,
        "prob_up": doubles | ints,
        "expected_return": doubles,
        "model_name": texts,
        "model_version": texts,
        "role": roles,
        "feature_set_version": texts,
        "scoring_latency_ms": doubles,
        "correlation_id": st.none() | texts,
        "produced_at": longs,
    },
    optional={
        "explanation_features": st.none() | st.lists(texts, max_size=6),
        "explanation_contributions": st.none() | st.lists(doubles | ints, max_size=6),
    },
)
outcomes = st.fixed_dictionaries(
    {
        "symbol": texts,
        "ts": longs,
        "horizon": ints,
        "model_name": texts,
        "model_version": texts,
        "role": roles,
        "prob_up": doubles,
        "expected_return": doubles,
        "realized_return": doubles,
        "realized_ts": longs,
        "hit": st.booleans(),
        "loss": doubles,
        "strategy_return": doubles,
        "feature_set_version": st.none() | texts,
        "correlation_id": st.none() | texts,
        "features": st.none() | st.lists(doubles, max_size=60),
    }
)


def same(a: Any, b: Any) -> bool:
    """Equality with NaN equal to NaN (records hold NaN prices in the property tests)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(type(a) is type(b) and a == b)


def outcome_of(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", reason): what a codec call gave."""
    try:
        return "ok", call()
    except SchemaError as exc:
        return "error", exc.reason


@settings(max_examples=400, deadline=None)
@given(ticks)
def test_tick_decoder_equals_fastavro(record: dict[str, Any]) -> None:
    try:
        payload = TICK.encode(record)
    except SchemaError:
        return  # e.g. a lone surrogate in a string: nothing to decode
    assert same(DECODER.decode(payload), TICK.decode(payload))


@settings(max_examples=400, deadline=None)
@given(ticks, st.data())
def test_tick_decoder_on_damaged_payloads_agrees_with_fastavro(
    record: dict[str, Any], data: st.DataObject
) -> None:
    try:
        payload = bytearray(TICK.encode(record))
    except SchemaError:
        return
    cut = data.draw(st.integers(min_value=0, max_value=len(payload)))
    flips = data.draw(st.lists(st.integers(min_value=10, max_value=len(payload) - 1), max_size=3))
    for i in flips:
        payload[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    extra = data.draw(st.binary(max_size=3))
    damaged = bytes(payload[:cut]) if data.draw(st.booleans()) else bytes(payload) + extra
    fast = outcome_of(lambda: DECODER.decode(damaged))
    slow = outcome_of(lambda: TICK.decode(damaged))
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        assert same(fast[1], slow[1])
    else:
        assert fast[1] == slow[1]


@settings(max_examples=400, deadline=None)
@given(predictions)
def test_prediction_encoder_bytes_equal_fastavro(record: dict[str, Any]) -> None:
    assert outcome_of(lambda: PRED_ENCODER.encode(record)) == outcome_of(
        lambda: PREDICTION.encode(record)
    )


@settings(max_examples=400, deadline=None)
@given(outcomes)
def test_outcome_encoder_bytes_equal_fastavro(record: dict[str, Any]) -> None:
    assert outcome_of(lambda: OUTCOME_ENCODER.encode(record)) == outcome_of(
        lambda: OUTCOME.encode(record)
    )


def test_unusual_values_fall_back_to_fastavro() -> None:
    record = {
        "symbol": "AAPL", "ts": 1_700_000_000_000, "horizon": 1, "prob_up": 0.6,
        "expected_return": 0.001, "model_name": "m", "model_version": "3", "role": "CHAMPION",
        "feature_set_version": "abc", "scoring_latency_ms": 1.5, "correlation_id": None,
        "produced_at": 1_700_000_000_001,
    }  # fmt: skip
    assert PRED_ENCODER.encode(record) == PREDICTION.encode(record)
    with pytest.raises(SchemaError):
        PRED_ENCODER.encode({**record, "role": "BOSS"})
    with pytest.raises(SchemaError):
        PRED_ENCODER.encode({k: v for k, v in record.items() if k != "symbol"})
    assert PRED_ENCODER.encode({**record, "horizon": True}) == PREDICTION.encode(
        {**record, "horizon": True}
    )


def test_other_writer_schemas_and_garbage_go_through_fastavro() -> None:
    for payload in (b"", b"\xc3\x01", b"\xc3\x01" + b"\x00" * 8 + b"x", b"garbage!!!!!"):
        assert outcome_of(lambda p=payload: DECODER.decode(p)) == outcome_of(  # type: ignore[misc]
            lambda p=payload: TICK.decode(p)  # type: ignore[misc]
        )


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, -65, 2**40, -(2**63), 2**63 - 1])
def test_varint_is_avro_zigzag(n: int) -> None:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    assert varint(n) == bytes(out)
