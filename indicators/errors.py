"""Typed errors of the indicator library.

TickcastError
└── IndicatorError            base of this package's errors
    ├── InvalidBarError       a bar cannot be applied (``reason``: a short code)
    ├── FeatureSetError       a feature-set definition is invalid (also a ValueError)
    └── FrameError            a bar DataFrame is unusable (also a ValueError)
"""

from __future__ import annotations

from tickcast.errors import TickcastError


class IndicatorError(TickcastError):
    """Base of every error raised on purpose by :mod:`indicators`."""


class InvalidBarError(IndicatorError):
    """A bar was refused; the state it was offered to is unchanged.

    ``reason`` is a short machine-readable code (``non_finite``, ``non_positive_price``,
    ``high_below_low``, ``negative_volume``, ``stale``) fit for a dead-letter record.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class FeatureSetError(IndicatorError, ValueError):
    """A feature-set spec names an unknown indicator, a bad parameter or a duplicate name."""


class FrameError(IndicatorError, ValueError):
    """A bar DataFrame cannot be turned into features (missing column, bad row)."""
