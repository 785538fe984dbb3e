"""The serving JSON of a prediction: the Redis value the worker writes and the API reads.

It is the Prediction record (``schemas/avro/prediction.avsc``) under the API's names; the
renames are held once, in :data:`SERVING_FROM_PREDICTION`. Unit tests check
:func:`serving_json`, the TypedDict, the API's reader (``serving/freshness.py``) and its
pydantic answer against this mapping and the contract.

>>> record = serving_json({"symbol": "AAPL", "ts": 1, "horizon": 5, "prob_up": 0.6,
...     "expected_return": 0.01, "model_name": "xgb", "model_version": "3",
...     "role": "CHAMPION", "feature_set_version": "abc", "scoring_latency_ms": 1.5,
...     "correlation_id": None, "produced_at": 2})
>>> record["model"], record["value"], record["updated_at"]
('xgb', 0.6, 2)
"""

# No `from __future__ import annotations`: the test reads the TypedDict's hints at runtime.
from typing import NotRequired, TypedDict

from schemas.records import ModelRole, Prediction


class ServingPrediction(TypedDict):
    """``<prefix>prediction:<SYMBOL>`` (see :mod:`sinks.redis_keys`) as the worker writes it."""

    symbol: str
    event_time: int
    model: str
    version: str
    role: ModelRole
    value: float
    expected_return: float
    horizon: int
    feature_event_time: int
    updated_at: int
    correlation_id: str | None
    explanation_features: list[str] | None
    explanation_contributions: list[float] | None
    traceparent: NotRequired[str]
    """The W3C trace context of a traced tick's prediction (tickcast.tracing): the API's
    answer joins that trace. Only on predictions of traced ticks; no Prediction field."""


#: Each serving JSON key and the Prediction field it carries, in the JSON's key order.
SERVING_FROM_PREDICTION: dict[str, str] = {
    "symbol": "symbol",
    "event_time": "ts",
    "model": "model_name",
    "version": "model_version",
    "role": "role",
    "value": "prob_up",
    "expected_return": "expected_return",
    "horizon": "horizon",
    "feature_event_time": "ts",
    "updated_at": "produced_at",
    "correlation_id": "correlation_id",
    "explanation_features": "explanation_features",
    "explanation_contributions": "explanation_contributions",
}
#: Prediction fields the serving JSON leaves out (read them from Kafka or ClickHouse).
NOT_SERVED = frozenset({"feature_set_version", "scoring_latency_ms"})
#: Serving keys that carry no Prediction field (optional: written only when they apply).
NOT_FROM_PREDICTION = frozenset({"traceparent"})


def serving_json(pred: Prediction) -> ServingPrediction:
    """The serving JSON of a prediction record.

    Written out rather than looped over :data:`SERVING_FROM_PREDICTION` (2.4x faster; it
    runs per prediction in the worker's batch): ``tests/unit/schemas/test_serving.py``
    fails when it drifts from the mapping.
    """
    return {
        "symbol": pred["symbol"],
        "event_time": pred["ts"],
        "model": pred["model_name"],
        "version": pred["model_version"],
        "role": pred["role"],
        "value": pred["prob_up"],
        "expected_return": pred["expected_return"],
        "horizon": pred["horizon"],
        "feature_event_time": pred["ts"],
        "updated_at": pred["produced_at"],
        "correlation_id": pred.get("correlation_id"),
        "explanation_features": pred.get("explanation_features"),
        "explanation_contributions": pred.get("explanation_contributions"),
    }


__all__ = [
    "NOT_FROM_PREDICTION",
    "NOT_SERVED",
    "SERVING_FROM_PREDICTION",
    "ServingPrediction",
    "serving_json",
]
