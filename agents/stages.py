"""The seam between the feature stage and the stages that run in the same micro-batch.

Scoring and the outcome join run inside the feature agent's batch (one Kafka hop, one
Faust iteration per tick), in the order features → predictions → outcomes. A later stage
implements :class:`BatchStage`; its per-symbol state lives in ``SymbolStream.extra`` so it is
checkpointed and restored with the features' state, atomically per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agents.feature_engine import BatchOutput
from schemas.records import Outcome, Prediction
from schemas.serving import ServingPrediction


@dataclass
class StageOutput:
    """Records a stage wants published, and Redis values it wants written."""

    predictions: list[Prediction] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    latest: dict[str, ServingPrediction] = field(default_factory=dict)
    """Redis ``prediction:<SYMBOL>`` JSON of the champion, per symbol."""
    latest_challenger: dict[str, ServingPrediction] = field(default_factory=dict)
    """Redis ``prediction:<SYMBOL>:challenger`` JSON, per symbol."""


class BatchStage(Protocol):
    """A stage run on each micro-batch after the features."""

    def open(self) -> None:
        """Connect / load what the stage needs (called once at worker start)."""

    async def refresh(self) -> None:
        """Between batches: e.g. reload models whose registry alias moved."""

    def process(self, out: BatchOutput, now_ms: int) -> StageOutput:
        """Turn a batch's features into predictions and outcomes."""
        ...
