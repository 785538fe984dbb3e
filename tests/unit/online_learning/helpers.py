"""Synthetic predictions and outcomes for the online-learning tests."""

from __future__ import annotations

from devtools.synthetic.outcomes import paired_outcomes, prediction

__all__ = ["paired_outcomes", "prediction"]
