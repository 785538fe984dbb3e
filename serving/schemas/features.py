"""Schemas of the features resource."""

from __future__ import annotations

from pydantic import BaseModel, Field

from serving.schemas.common import HARD_MAX_BATCH, Symbol


class FeaturesPublic(BaseModel):
    """The latest feature vector of a symbol with its freshness."""

    symbol: str
    features: dict[str, float | None] = Field(
        description="By name (null while an indicator warms up); empty when values is set."
    )
    feature_set_version: str | None = Field(None, description="Of the worker that wrote it.")
    values: list[float | None] | None = Field(
        None, description="Unnamed values, when the writer's feature set is not this build's."
    )
    event_time: int = Field(description="Exchange time of the last tick, epoch ms.")
    updated_at: int | None = Field(None, description="When it was written, epoch ms.")
    read_at: int | None = Field(
        None, description="When the API read it from Redis, epoch ms (cached up to a TTL)."
    )
    age_s: float = Field(description="Seconds from event time to now.")
    stale: bool = Field(description="age_s is beyond the configured stale_after_s.")


class FeaturesBatchRequest(BaseModel):
    """Symbols to look up (duplicates are answered once)."""

    symbols: list[Symbol] = Field(min_length=1, max_length=HARD_MAX_BATCH)


class FeaturesBatchPublic(BaseModel):
    """Features per symbol (null when unknown) and the unknown symbols."""

    features: dict[str, FeaturesPublic | None]
    missing: list[str]
