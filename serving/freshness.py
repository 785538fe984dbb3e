"""Turn store records into public answers with their age and staleness (pure functions).

>>> age_of(1_000_000, now_s=1_005.5)
5.5
>>> features_public("AAPL", {"event_time": 1_000_000, "features": {"rsi_14": 55.0}},
...                 now_s=1_100.0, stale_after_s=60).stale
True
"""

from __future__ import annotations

import math
from typing import Any

from serving.schemas.features import FeaturesPublic
from serving.schemas.predictions import FeatureContribution, PredictionPublic
from tickcast.errors import SchemaError


class MalformedRecord(SchemaError, ValueError):
    """A store returned a record that does not follow the contract of :mod:`serving.store`."""

    def __init__(self, message: str) -> None:
        super().__init__("malformed_record", message)


def age_of(event_time_ms: int, *, now_s: float) -> float:
    """Seconds from ``event_time_ms`` to ``now_s`` (never negative: clocks may disagree)."""
    return round(max(0.0, now_s - event_time_ms / 1000), 3)


def _millis(record: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = record.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedRecord(f"{name} must be epoch milliseconds, got {type(value).__name__}")
    return int(value)


def _optional(record: dict[str, Any], name: str, kind: type) -> Any:
    value = record.get(name)
    if value is None:
        return None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedRecord(f"{name} must be a number")
        return float(value) if math.isfinite(value) else None
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedRecord(f"{name} must be an integer")
        if not math.isfinite(value):
            raise MalformedRecord(f"{name} must be an integer")
        return int(value)
    return str(value)


def explanation_of(record: dict[str, Any]) -> list[FeatureContribution] | None:
    """The record's explanation as (feature, contribution) pairs (``None`` when it has none).

    >>> explanation_of({"explanation_features": ["rsi_14"], "explanation_contributions": [0.2]})
    [FeatureContribution(feature='rsi_14', contribution=0.2)]
    """
    names = record.get("explanation_features")
    values = record.get("explanation_contributions")
    if names is None or values is None:
        return None
    if not isinstance(names, list) or not isinstance(values, list) or len(names) != len(values):
        raise MalformedRecord("explanation_features and explanation_contributions must pair up")
    return [
        FeatureContribution(feature=str(name), contribution=float(value))
        for name, value in zip(names, values, strict=True)
    ]


def prediction_public(
    symbol: str,
    record: dict[str, Any],
    *,
    now_s: float,
    stale_after_s: float,
    explain: bool = False,
) -> PredictionPublic:
    """The public prediction of ``symbol`` from a store record (its explanation if asked)."""
    event_time = _millis(record, "event_time")
    assert event_time is not None
    feature_time = _millis(record, "feature_event_time", required=False)
    age = age_of(event_time, now_s=now_s)
    try:
        return PredictionPublic(
            symbol=symbol,
            model=str(record["model"]),
            version=str(record["version"]),
            role=str(record.get("role", "champion")),
            value=float(record["value"]),
            expected_return=_optional(record, "expected_return", float),
            horizon=_optional(record, "horizon", int),
            horizon_s=_optional(record, "horizon_s", float),
            event_time=event_time,
            updated_at=_millis(record, "updated_at", required=False),
            read_at=_millis(record, "read_at", required=False),
            age_s=age,
            feature_age_s=None if feature_time is None else age_of(feature_time, now_s=now_s),
            stale=age > stale_after_s,
            correlation_id=_optional(record, "correlation_id", str),
            arm=None,
            note=None,
            explanation=explanation_of(record) if explain else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord(f"prediction record: {exc}") from None


def features_public(
    symbol: str, record: dict[str, Any], *, now_s: float, stale_after_s: float
) -> FeaturesPublic:
    """The public features of ``symbol`` from a store record."""
    event_time = _millis(record, "event_time")
    assert event_time is not None
    age = age_of(event_time, now_s=now_s)
    try:
        return FeaturesPublic(
            symbol=symbol,
            features=record["features"],
            feature_set_version=_optional(record, "feature_set_version", str),
            values=record.get("values"),
            event_time=event_time,
            updated_at=_millis(record, "updated_at", required=False),
            read_at=_millis(record, "read_at", required=False),
            age_s=age,
            stale=age > stale_after_s,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord(f"features record: {exc}") from None
