"""Typed views of the decoded records (one ``TypedDict`` per schema in ``schemas/avro``).

Field names and types mirror the ``.avsc`` files (a unit test keeps them in step).
Timestamps are ``int`` epoch milliseconds, as :class:`streams.codec.AvroCodec` decodes them.
Fields that are nullable with a default may be left out when encoding (``NotRequired``);
decoded records always have every key.
"""

# No `from __future__ import annotations` here: TypedDict must see NotRequired at class creation.
from typing import Literal, NotRequired, TypedDict

TickKind = Literal["TRADE", "BAR"]
ModelRole = Literal["CHAMPION", "CHALLENGER", "SHADOW"]
DriftLevel = Literal["OK", "WARN", "ALERT"]
ModelEventType = Literal["REGISTERED", "PROMOTED", "ROLLED_BACK", "REJECTED", "CHECKPOINT"]
DeadLetterReason = Literal[
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


class Tick(TypedDict):
    """``io.tickcast.v1.Tick``: a trade (open = high = low = close = price) or an OHLCV bar."""

    symbol: str
    ts: int
    kind: TickKind
    price: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    bid: NotRequired[float | None]
    ask: NotRequired[float | None]
    bid_size: NotRequired[float | None]
    ask_size: NotRequired[float | None]
    interval_ms: NotRequired[int | None]
    source: str
    sequence: NotRequired[int | None]
    correlation_id: NotRequired[str | None]


class DeadLetter(TypedDict):
    """``io.tickcast.v1.DeadLetter``: a refused record, its bytes and the reason."""

    source_topic: str
    partition: int
    offset: int
    key: NotRequired[bytes | None]
    payload: bytes
    reason: DeadLetterReason
    detail: str
    failed_at: int
    correlation_id: NotRequired[str | None]
    processor: NotRequired[str | None]
    event_ts: NotRequired[int | None]


class FeatureVector(TypedDict):
    """``io.tickcast.v1.FeatureVector``: values in the order of ``feature_set_version``."""

    symbol: str
    ts: int
    feature_set_version: str
    values: list[float]
    source_topic: NotRequired[str | None]
    source_partition: NotRequired[int | None]
    source_offset: NotRequired[int | None]
    correlation_id: NotRequired[str | None]


class Prediction(TypedDict):
    """``io.tickcast.v1.Prediction``: one model's forecast for a symbol at event time ts."""

    symbol: str
    ts: int
    horizon: int
    prob_up: float
    expected_return: float
    model_name: str
    model_version: str
    role: ModelRole
    feature_set_version: str
    scoring_latency_ms: float
    correlation_id: NotRequired[str | None]
    produced_at: int
    explanation_features: NotRequired[list[str] | None]
    explanation_contributions: NotRequired[list[float] | None]


class Outcome(TypedDict):
    """``io.tickcast.v1.Outcome``: a prediction joined with its realized return."""

    symbol: str
    ts: int
    horizon: int
    model_name: str
    model_version: str
    role: ModelRole
    prob_up: float
    expected_return: float
    realized_return: float
    realized_ts: int
    hit: bool
    loss: float
    strategy_return: float
    feature_set_version: NotRequired[str | None]
    correlation_id: NotRequired[str | None]
    features: NotRequired[list[float] | None]


class DriftStat(TypedDict):
    """``io.tickcast.v1.DriftStat``: PSI/KS of one feature over one event-time window."""

    feature: str
    window_start: int
    window_end: int
    psi: float
    ks: NotRequired[float | None]
    n: int
    reference_model_name: str
    reference_model_version: str
    feature_set_version: str
    level: DriftLevel
    symbol: NotRequired[str | None]
    ks_pvalue: NotRequired[float | None]


class ModelEvent(TypedDict):
    """``io.tickcast.v1.ModelEvent``: a lifecycle decision with its statistics and inputs."""

    event_type: ModelEventType
    model_name: str
    version: str
    from_version: NotRequired[str | None]
    role: ModelRole
    reason: str
    statistics: dict[str, float]
    inputs: dict[str, str]
    actor: str
    ts: int
    correlation_id: NotRequired[str | None]


class MacroObservation(TypedDict):
    """``io.tickcast.v1.MacroObservation``: one published value of a macro series."""

    series_id: str
    value: float
    reference_period: str
    published_at: int
    source: str


class NewsItem(TypedDict):
    """``io.tickcast.v1.NewsItem``: a headline about one or more symbols."""

    symbols: list[str]
    headline: str
    source: str
    published_at: int
    id: NotRequired[str | None]


RECORD_TYPES: dict[str, type] = {
    "tick": Tick,
    "dead_letter": DeadLetter,
    "feature_vector": FeatureVector,
    "prediction": Prediction,
    "outcome": Outcome,
    "drift_stat": DriftStat,
    "model_event": ModelEvent,
    "macro_observation": MacroObservation,
    "news_item": NewsItem,
}
