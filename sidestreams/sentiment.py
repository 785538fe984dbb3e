"""Headline sentiment: VADER's compound score (``vaderSentiment``, lexicon in the wheel).

One analyzer per process, built on first use (reading the lexicon takes ~0.1 s), never at
import. The score is a pure function of the text: the worker and training agree exactly.

>>> good = score_headline("Apple beats estimates, shares soar")
>>> bad = score_headline("Plant fire halts output, losses mount")
>>> good > 0.0 > bad
True
>>> score_headline("")
0.0
"""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

__all__ = ["score_headline"]


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def score_headline(text: str) -> float:
    """VADER compound score of ``text``, in ``[-1, 1]`` (0.0 for empty or neutral text)."""
    return float(_analyzer().polarity_scores(text)["compound"])
