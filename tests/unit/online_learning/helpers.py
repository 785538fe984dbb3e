"""Synthetic predictions and outcomes for the online-learning tests."""

from __future__ import annotations

from online_learning.synthetic import paired_outcomes, prediction

__all__ = ["paired_outcomes", "prediction"]
