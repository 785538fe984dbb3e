"""The Prediction's explanation fields evolve the schema with a default, both ways.

* a reader on the previous Prediction (history) reads a new, explained record and ignores
  the fields;
* a reader on the current schema reads a record written with the previous one, with both
  fields null (their default);
* the hand-written encoder writes explained records byte for byte as fastavro.
"""

from __future__ import annotations

import json
from typing import Any

from schemas import AVRO_DIR
from schemas.compat import compatibility_problems
from streams.codec import AvroCodec
from streams.hot_codec import PredictionEncoder

PREVIOUS = AVRO_DIR / "history" / "prediction.a5d42a513bb672ea.avsc"
RECORD: dict[str, Any] = {
    "symbol": "AAPL", "ts": 1, "horizon": 1, "prob_up": 0.6, "expected_return": 0.001,
    "model_name": "m", "model_version": "3", "role": "CHAMPION", "feature_set_version": "fs",
    "scoring_latency_ms": 1.5, "correlation_id": None, "produced_at": 2,
}  # fmt: skip
EXPLAINED = {
    **RECORD,
    "explanation_features": ["rsi_14", "ret_1"],
    "explanation_contributions": [0.25, -0.125],
}


def _old() -> AvroCodec:
    return AvroCodec(json.loads(PREVIOUS.read_text()))


def test_the_change_is_compatible_both_ways() -> None:
    old, new = _old().schema, AvroCodec("prediction").schema
    assert compatibility_problems(writer=new, reader=old) == []
    assert compatibility_problems(writer=old, reader=new) == []


def test_an_old_reader_reads_an_explained_record_without_the_fields() -> None:
    old = _old()
    old.register_writer_schema(AvroCodec("prediction").schema)
    got = old.decode(AvroCodec("prediction").encode(EXPLAINED))
    assert got == RECORD


def test_a_new_reader_reads_an_old_record_with_null_explanations() -> None:
    current = AvroCodec("prediction")
    current.register_writer_schema(_old().schema)
    got = current.decode(_old().encode(RECORD))
    assert got == {**RECORD, "explanation_features": None, "explanation_contributions": None}


def test_the_hot_encoder_writes_explained_and_plain_records_as_fastavro() -> None:
    fast, slow = PredictionEncoder(), AvroCodec("prediction")
    for record in (RECORD, EXPLAINED, {**EXPLAINED, "explanation_features": []}):
        assert fast.encode(record) == slow.encode(record)
    assert slow.decode(fast.encode(EXPLAINED)) == EXPLAINED
