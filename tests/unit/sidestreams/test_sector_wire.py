"""The sector sync's two hot reads give the Avro codec's answer, or step aside (``None``)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sidestreams.sector_sync import read_return, record_time
from streams.codec import AvroCodec
from streams.feature_encoder import FeatureVectorEncoder
from streams.replay import tick_records

VECTORS = AvroCodec("feature_vector")
TICKS = AvroCodec("tick")

vectors = st.fixed_dictionaries(
    {
        "symbol": st.text(max_size=12),
        "ts": st.integers(-(2**63), 2**63 - 1),
        "feature_set_version": st.text(max_size=12),
        "values": st.lists(st.floats(allow_nan=True), max_size=3),
    },
    optional={
        "source_topic": st.none() | st.text(max_size=5),
        "source_partition": st.none() | st.integers(0, 100),
        "correlation_id": st.none() | st.text(max_size=5),
    },
)


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )


@given(vectors)
def test_a_return_reads_as_the_codec_decodes_it_or_not_at_all(record: dict) -> None:  # type: ignore[type-arg]
    payload = FeatureVectorEncoder().encode(record)
    want = VECTORS.decode(payload)
    got = read_return(payload, VECTORS.header)
    simple = len(record["values"]) <= 1 and not any(
        record.get(k) is not None for k in ("source_topic", "source_partition", "correlation_id")
    )
    if not simple:
        assert got is None
        return
    assert got is not None
    symbol, ts, kind, values = got
    assert (symbol, ts, kind) == (want["symbol"], want["ts"], want["feature_set_version"])
    assert _same(values, want["values"])
    assert record_time(payload, VECTORS.header) == want["ts"]


@given(vectors, st.integers(0, 40))
def test_a_damaged_payload_is_left_to_the_codec(record: dict, cut: int) -> None:  # type: ignore[type-arg]
    payload = FeatureVectorEncoder().encode(record)
    short = payload[: max(0, len(payload) - 1 - cut)]
    got = read_return(short, VECTORS.header)
    assert got is None or got == read_return(payload, VECTORS.header)  # never a wrong answer
    assert read_return(b"\x00" + payload[1:], VECTORS.header) is None  # another magic byte


def test_a_ticks_time_is_the_decoded_ts() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"ts_ms": [0, 1, 2**40], "symbol": ["A", "BRK.B", "Z" * 12], "open": 1.0,
         "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0}
    )  # fmt: skip
    for tick in tick_records(frame, "test"):
        payload = TICKS.encode(tick)
        assert record_time(payload, TICKS.header) == TICKS.decode(payload)["ts"]
    assert record_time(None, TICKS.header) is None
    assert record_time(b"garbage", TICKS.header) is None
