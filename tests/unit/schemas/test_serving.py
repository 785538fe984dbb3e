"""The serving JSON (schemas/serving.py) against the Prediction contract and the API.

One mapping, SERVING_FROM_PREDICTION, holds the renames. These tests fail when the worker's
writer (serving_json), its TypedDict, the API's reader (serving/freshness.py) or the API's
answer (serving/schemas/predictions.py) drifts from it, or when the contract gains a field
nobody decided about.
"""

from __future__ import annotations

from typing import get_type_hints

import orjson

from schemas.contracts import fields
from schemas.records import Prediction
from schemas.serving import (
    NOT_FROM_PREDICTION,
    NOT_SERVED,
    SERVING_FROM_PREDICTION,
    ServingPrediction,
    serving_json,
)
from serving.freshness import prediction_public
from serving.redis_store import prediction_record
from serving.schemas.predictions import PredictionPublic
from tests.unit.schemas.probe import T0, probe

# Serving keys the API turns into something else, and API fields that are no serving key.
DERIVED = {
    "feature_event_time": "feature_age_s",
    "explanation_features": "explanation",
    "explanation_contributions": "explanation",
}
API_ONLY = {
    "horizon_s", "read_at", "age_s", "feature_age_s", "stale", "arm", "note", "explanation"
}  # fmt: skip


def test_every_prediction_field_is_served_or_declared_not_served() -> None:
    served = set(SERVING_FROM_PREDICTION.values())
    assert served <= set(fields("prediction"))
    assert served.isdisjoint(NOT_SERVED)
    assert served | NOT_SERVED == set(fields("prediction"))


def test_the_typed_dict_is_the_mapping_with_the_contracts_types() -> None:
    hints = get_type_hints(ServingPrediction)
    assert [k for k in hints if k not in NOT_FROM_PREDICTION] == list(SERVING_FROM_PREDICTION)
    assert ServingPrediction.__optional_keys__ >= NOT_FROM_PREDICTION
    contract_hints = get_type_hints(Prediction)
    for key, field in SERVING_FROM_PREDICTION.items():
        assert hints[key] == contract_hints[field], key


def test_serving_json_is_the_mapping() -> None:
    pred = probe("prediction")
    json = serving_json(pred)
    assert list(json) == list(SERVING_FROM_PREDICTION)
    assert json == {key: pred[field] for key, field in SERVING_FROM_PREDICTION.items()}


def test_the_api_answers_with_what_the_worker_wrote() -> None:
    pred = probe("prediction")
    payload = orjson.dumps(serving_json(pred))
    record = prediction_record(payload, read_at=T0 + 500)
    assert record is not None
    answer = prediction_public(
        "SYM", record, now_s=T0 / 1000 + 1.0, stale_after_s=60.0, explain=True
    )
    public = answer.model_dump()
    assert public["explanation"] == [
        {"feature": name, "contribution": value}
        for name, value in zip(
            pred["explanation_features"], pred["explanation_contributions"], strict=True
        )
    ]
    for key, field in SERVING_FROM_PREDICTION.items():
        if key in DERIVED:
            assert public[DERIVED[key]] is not None, key
        elif key == "role":
            assert public[key] == pred[field].lower()  # the API speaks lower case
        elif key == "symbol":
            assert public[key] == "SYM"  # the path's symbol
        else:
            assert public[key] == pred[field], key


def test_every_api_field_is_served_or_api_only() -> None:
    api = set(PredictionPublic.model_fields)
    served = set(SERVING_FROM_PREDICTION) - set(DERIVED)
    assert served <= api, "a served key the API does not answer with"
    assert api - served == API_ONLY, "an API field that is neither served nor API-only"
