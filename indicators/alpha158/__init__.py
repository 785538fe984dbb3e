"""Qlib's Alpha158, exact, for ticks one at a time or a micro-batch at once.

* :mod:`~indicators.alpha158.definitions`: the 158 names and Qlib expressions, as data;
* :mod:`~indicators.alpha158.vector`: the engine: each tick's window of its symbol's last
  61 bars, every operator for every tick of a batch with a fixed number of numpy calls;
* :mod:`~indicators.alpha158.state`: :class:`Alpha158`, the per-symbol indicator (a 60-bar
  history; an update is the engine on a batch of one);
* :mod:`~indicators.alpha158.rows`: the stream's micro-batch queue;
* :mod:`~indicators.alpha158.legacy` (with :mod:`~indicators.alpha158.windows`): snapshots
  of the earlier incremental engines, migrated.
"""

from indicators.alpha158.definitions import EXPRESSIONS, NAMES, WINDOWS
from indicators.alpha158.state import Alpha158, bar_vwap

__all__ = ["EXPRESSIONS", "NAMES", "WINDOWS", "Alpha158", "bar_vwap"]
