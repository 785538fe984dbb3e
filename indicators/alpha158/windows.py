"""Unpickling targets of the incremental operators Alpha158 used before its history engine.

Snapshots written before the history engine (:mod:`indicators.alpha158.vector`) pickled a
symbol's Alpha158 as these operators (ring buffers, running sums, monotonic deques). They
are kept here as plain attribute holders, so such a snapshot still loads and
:mod:`indicators.alpha158.legacy` migrates it; nothing computes with them.
"""

from __future__ import annotations


class _Legacy:
    """Attributes of a pickled operator, as they were."""


class Moments(_Legacy):
    """Rolling count, mean and variance (ring ``buf``, oldest at ``buf[pos]``)."""


class RollingSum(_Legacy):
    """Rolling sum (ring ``buf``)."""


class PairMoments(_Legacy):
    """Rolling correlation (rings ``buf`` and ``ybuf``)."""


class Regression(_Legacy):
    """Rolling regression on row positions (ring ``buf``)."""


class Extremum(_Legacy):
    """Rolling max or min: ``dq`` holds ``(bar index, value)`` of the undominated inputs."""


class OrderStats(_Legacy):
    """Rolling quantiles and rank (ring ``buf``, ``sorted``)."""
