"""The hand-written FeatureVector encoder writes exactly what fastavro writes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import get_codec
from streams.feature_encoder import FeatureVectorEncoder

ENCODER = FeatureVectorEncoder()
CODEC = get_codec("FeatureVector")

records = st.fixed_dictionaries(
    {
        "symbol": st.text(min_size=1, max_size=12),
        "ts": st.integers(min_value=-(2**62), max_value=2**62),
        "feature_set_version": st.text(max_size=16),
        "values": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80),
        "source_topic": st.none() | st.text(max_size=20),
        "source_partition": st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "source_offset": st.none() | st.integers(min_value=0, max_value=2**62),
        "correlation_id": st.none() | st.text(max_size=32),
    }
)


@settings(max_examples=300, deadline=None)
@given(records)
def test_bytes_equal_the_avro_codec(record: dict[str, object]) -> None:
    assert ENCODER.encode(record) == CODEC.encode(record)


def test_round_trip_through_the_codec() -> None:
    record = {
        "symbol": "AAPL", "ts": 1_700_000_000_000, "feature_set_version": "abc",
        "values": [1.5, math.nan, -2.0], "source_topic": "ticks", "source_partition": 3,
        "source_offset": 12345, "correlation_id": "c1",
    }  # fmt: skip
    back = CODEC.decode(ENCODER.encode(record))
    assert back["values"][0] == 1.5
    assert math.isnan(back["values"][1])
    assert back["source_offset"] == 12345
