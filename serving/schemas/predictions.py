"""Schemas of the predictions resource (latest answers and history pages)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from serving.schemas.common import HARD_MAX_BATCH, Symbol


class PredictionBase(BaseModel):
    """A model's latest prediction for a symbol."""

    symbol: str
    model: str
    version: str
    role: str = Field(description="champion or challenger: the model that wrote it.")
    value: float = Field(description="P(up) of the horizon's return.")
    expected_return: float | None = Field(None, description="(2·P(up) − 1) · return scale.")
    horizon: int | None = Field(None, description="Forecast horizon in bars.")
    horizon_s: float | None = None


class FeatureContribution(BaseModel):
    """One feature's TreeSHAP contribution to the prediction (``?explain=true``)."""

    feature: str
    contribution: float = Field(
        description="In the model's margin units (log-odds for XGBoost and LightGBM, "
        "probability for the random forest); positive pushes towards up."
    )


class PredictionPublic(PredictionBase):
    """The prediction with its freshness (and the caller's A/B arm when A/B is on)."""

    event_time: int = Field(description="Exchange time of the tick scored, epoch ms.")
    updated_at: int | None = Field(None, description="When the worker wrote it, epoch ms.")
    read_at: int | None = Field(
        None, description="When the API read it from Redis, epoch ms (cached up to a TTL)."
    )
    age_s: float = Field(description="Seconds from event time to now.")
    feature_age_s: float | None = Field(None, description="Age of the features scored.")
    stale: bool = Field(description="age_s is beyond the configured stale_after_s.")
    correlation_id: str | None = Field(None, description="Of the tick that was scored.")
    arm: Literal["champion", "challenger"] | None = Field(
        None, description="The caller's A/B arm (null when A/B is off)."
    )
    note: str | None = Field(None, description="Why the answer differs from the arm asked.")
    explanation: list[FeatureContribution] | None = Field(
        None,
        description="With ?explain=true: the champion's top-k feature contributions, largest "
        "first (null when not asked, for a challenger, or a model without TreeSHAP).",
    )


class HistoryRow(BaseModel):
    """One prediction (with its outcome when asked) or one outcome, from ClickHouse."""

    symbol: str
    ts_ms: int = Field(description="Exchange time of the tick scored, epoch ms.")
    horizon: int
    model_name: str
    model_version: str
    role: str
    prob_up: float | None = None
    expected_return: float | None = None
    feature_set_version: str | None = None
    correlation_id: str | None = None
    run_id: str | None = None
    produced_at_ms: int | None = None
    realized_return: float | None = None
    realized_ts_ms: int | None = None
    hit: int | None = None
    loss: float | None = None
    strategy_return: float | None = None


class HistoryPage(BaseModel):
    """One page of history; pass ``next_cursor`` back as ``cursor`` for the next one."""

    symbol: str
    kind: Literal["predictions", "outcomes"]
    start: int = Field(description="Range start, epoch ms (inclusive).")
    end: int = Field(description="Range end, epoch ms (exclusive).")
    rows: list[HistoryRow]
    next_cursor: str | None = Field(None, description="Null on the last page.")


class PredictionsBatchRequest(BaseModel):
    """Symbols to look up (duplicates are answered once)."""

    symbols: list[Symbol] = Field(min_length=1, max_length=HARD_MAX_BATCH)


class PredictionsBatchPublic(BaseModel):
    """The champion's latest prediction per symbol (null when there is none) and the symbols
    without one. A/B arms apply to single look-ups only."""

    predictions: dict[str, PredictionPublic | None]
    missing: list[str]
