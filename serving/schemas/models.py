"""Schemas of the models resource: registry view, live metrics, A/B and test state, actions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
Scalar = float | int | str | bool | None


class Freshness(BaseModel):
    """When the learner last wrote a live value, and how old that is."""

    updated_at: int | None = Field(None, description="Epoch ms (null: never written).")
    age_s: float | None = None
    stale: bool = Field(description="Missing, or older than stale_after_s.")


class VersionPublic(BaseModel):
    """A registered version, with its live metrics when the learner reports them."""

    version: str
    role: str
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, Scalar] | None = Field(None, description="Live evaluation (rolling).")


class ModelPublic(BaseModel):
    """A registered model: its champion and challengers."""

    name: str
    champion: VersionPublic | None
    challengers: list[VersionPublic]


class ModelsPublic(BaseModel):
    """Every configured model, and the learner's live metrics of every version it tracks."""

    models: list[ModelPublic]
    registry_read_at: int | None = Field(None, description="When MLflow was read, epoch ms.")
    registry_error: str | None = Field(None, description="Why the registry view is missing.")
    live: Freshness
    live_metrics: dict[str, dict[str, Scalar]] = Field(
        description="By '<model>:<version>' (online challengers included)."
    )


class AbPublic(BaseModel):
    """The HTTP A/B experiment of this API process."""

    enabled: bool
    split: float = Field(description="Share of callers on the champion arm.")
    counts: dict[str, float] = Field(description="Requests per arm served by this process.")


class TestPublic(BaseModel):
    """Champion/challenger test state (as the learner published it) and the A/B split."""

    ab: AbPublic
    test: dict[str, Any] | None = Field(None, description="The learner's model-test JSON.")
    live: Freshness


class PromoteRequest(BaseModel):
    """Make a registered version, or an online learner's (registered first), the champion."""

    name: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="Default: the first configured model."
    )
    version: str = Field(
        pattern=r"^([0-9]{1,9}|online-[0-9]{1,12})$",
        description="Registered version, or online-N: the learner's newest checkpoint.",
    )
    learner: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="The online learner (e.g. river-logreg); required with online-N only.",
    )
    reason: str = Field(min_length=3, max_length=500)

    @model_validator(mode="after")
    def _learner_with_online(self) -> PromoteRequest:
        if self.version.startswith("online-") != (self.learner is not None):
            raise ValueError("learner is required with an online-N version, and only then")
        return self


class RollbackRequest(BaseModel):
    """Restore the champion that the current one replaced (or ``version``)."""

    name: str | None = Field(None, pattern=MODEL_NAME_PATTERN)
    version: str | None = Field(None, pattern=r"^[0-9]{1,9}$", description="Default: previous.")
    reason: str = Field(min_length=3, max_length=500)


class ModelEventPublic(BaseModel):
    """The ModelEvent record published (schemas/avro/model_event.avsc)."""

    event_type: Literal["REGISTERED", "PROMOTED", "ROLLED_BACK", "REJECTED", "CHECKPOINT"]
    model_name: str
    version: str
    from_version: str | None
    role: str
    reason: str
    statistics: dict[str, float]
    inputs: dict[str, str]
    actor: str
    ts: int
    correlation_id: str | None


class ActionPublic(BaseModel):
    """A promote or rollback: the event, and whether it reached the model-events topic."""

    event: ModelEventPublic
    published: bool
    publish_error: str | None = None
