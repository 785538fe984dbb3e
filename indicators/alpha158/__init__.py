"""Qlib's Alpha158, exact and incremental.

* :mod:`~indicators.alpha158.definitions`: the 158 names and Qlib expressions, as data;
* :mod:`~indicators.alpha158.windows`: the incremental window operators (O(1) moments,
  sums, correlation and regression; O(1) amortised max/min with positions; O(log w)
  quantiles and rank);
* :mod:`~indicators.alpha158.state`: :class:`Alpha158`, the per-symbol indicator.
"""

from indicators.alpha158.definitions import EXPRESSIONS, NAMES, WINDOWS
from indicators.alpha158.state import Alpha158, bar_vwap

__all__ = ["EXPRESSIONS", "NAMES", "WINDOWS", "Alpha158", "bar_vwap"]
