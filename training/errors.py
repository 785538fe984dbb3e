"""Typed errors of batch training.

TickcastError
└── TrainingError        bad input to training (``reason`` is a short machine tag)
    ├── SplitError       the timeline cannot be split as configured
    └── LookAheadError   a feature uses information from after its timestamp
"""

from __future__ import annotations

from tickcast.errors import TickcastError


class TrainingError(TickcastError):
    """Training input is unusable; ``reason`` says why in one tag."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SplitError(TrainingError):
    """The walk-forward splitter cannot produce the folds asked for."""


class LookAheadError(TrainingError):
    """A feature is not point-in-time; ``features`` names the culprits.

    ``reason`` is ``"truncation_mismatch"`` (its value at t changes when bars after t are
    removed) or ``"implausible_correlation"`` (it all but equals the next bar's return).
    """

    def __init__(
        self, reason: str, features: list[str], message: str, cutoff_ts: int | None = None
    ) -> None:
        super().__init__(reason, message)
        self.features = features
        self.cutoff_ts = cutoff_ts
