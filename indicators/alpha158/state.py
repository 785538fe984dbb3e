"""Alpha158 as one per-symbol indicator: a bar in, Qlib's 158 values out.

Semantics are Qlib's (pyqlib 0.9.7), computed in float64 (Qlib returns float32):

* rolling operators use the rows available so far at a series' start (``MA5`` is 1.0 on
  day one); ``Ref($close, d)`` is ``NaN`` for the first ``d`` bars, and so is everything
  built on a ``NaN`` (``ROC60`` from bar 61, ``STD5``/``VSTD5`` from bar 2, ``SUMP``,
  ``CORD``, ``WVMA`` from bar 2 or 3); ``$close>Ref($close, 1)`` is False (0) on day one;
* ``Std`` is the sample deviation (``ddof=1``); ``Rank`` the percentile rank of the newest
  close with ties averaged; ``IdxMax``/``IdxMin`` the 1-based position of the first extreme
  counted from the oldest row of the window; ``Quantile`` interpolates linearly;
* ``Slope``/``Rsquare``/``Resi`` regress the window on row positions ``1..w``;
  ``Rsquare`` and ``Corr`` are ``NaN`` where an input's rolling std is <= 2e-5
  (``np.isclose(std, 0, atol=2e-05)`` in Qlib); the ``+1e-12`` guards are kept as written;
* ``$vwap``: tickcast bars carry none, so a bar's VWAP is its typical price
  ``(high + low + close) / 3`` (:func:`bar_vwap`).

The state is the symbol's last 60 bars (:data:`~indicators.alpha158.vector.FIELDS`, 2.9 kB)
and an update is :func:`~indicators.alpha158.vector.advance` on a batch of one bar: the
function the stream runs on a whole micro-batch (:mod:`indicators.alpha158.rows`) and
training on a whole frame, so every path gives the same values, bit for bit.

>>> a = Alpha158()
>>> a.update_bar(Bar(0, 10.0, 10.5, 9.5, 10.2, 1000.0))
>>> values = dict(zip(a.names, a.out, strict=True))
>>> values["MA5"], values["RANK60"], values["IMAX5"], math.isnan(values["STD5"])
(1.0, 1.0, 0.2, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import numpy as np

from indicators.alpha158 import legacy
from indicators.alpha158.definitions import NAMES, WINDOWS
from indicators.alpha158.vector import F64, FIELDS, HISTORY, advance
from indicators.bar import Bar
from indicators.base import Indicator

_ONE = np.zeros(1, dtype=np.int64)
_FORMAT = "alpha158/history-v2"


def bar_vwap(bar: Bar) -> float:
    """tickcast's ``$vwap`` of a bar: the typical price ``(high + low + close) / 3``.

    >>> bar_vwap(Bar(0, 10.0, 12.0, 9.0, 12.0, 5.0))
    11.0
    """
    return (bar.high + bar.low + bar.close) / 3.0


class BarQueue(Protocol):
    """Where an attached indicator's bars wait for the micro-batch (``rows.BatchRows``)."""

    def push(self, indicator: Alpha158, bar: Bar) -> None: ...


def empty_history() -> F64:
    """The history of a symbol without bars (all ``NaN``)."""
    return np.full((len(FIELDS), HISTORY), math.nan)


class Alpha158(Indicator):
    """Qlib's Alpha158, updated bar by bar; ``out`` holds the 158 values in Qlib's order.

    Values exist from the first bar, as in Qlib (``NaN`` where Qlib's are, e.g. ``ROC60``
    for 60 bars); :attr:`defined_after` is the bar count from which every feature can be
    defined. State: ``hist``, the last 60 bars' fields ``[6, 60]``, constant in size.
    While ``queue`` is set (a feature stage's micro-batch engine), :meth:`update_bar` only
    queues the bar (``out`` is empty until then); the engine computes it with the rest of
    the batch.
    """

    __slots__ = ("hist", "queue")

    kind: ClassVar[str] = "alpha158"
    n_outputs: ClassVar[int] = len(NAMES)
    #: Bars after which no feature is ``NaN`` by construction (``ROC60`` needs 61).
    defined_after: ClassVar[int] = max(WINDOWS) + 1

    def __init__(self) -> None:
        super().__init__(1)
        self.hist = empty_history()
        self.queue: BarQueue | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return NAMES

    def params(self) -> dict[str, float]:
        return {}

    def update_bar(self, bar: Bar) -> None:
        if self.queue is not None:
            # Queued: ``out`` stays empty until the batch is computed, so the feature list
            # the symbol's state returns has no stale block to build and overwrite; the
            # queue inserts the values into it (BatchRows.flush) and sets ``out`` again.
            self._n = 1
            self.out = ()
            self.queue.push(self, bar)
            return
        self.update(bar.open, bar.high, bar.low, bar.close, bar.volume, bar_vwap(bar))

    def update(self, o: float, h: float, lo: float, c: float, v: float, vwap: float) -> None:
        """Apply one bar's fields; ``out`` then holds its 158 features."""
        out, hist = advance(self.hist[None], _ONE, np.array([[o, h, lo, c, v, vwap]]))
        self.hist = hist[0]
        self.out = tuple(out[0].tolist())
        self._n = 1

    # -- snapshots: the history and the last values as float64 bytes (~4 kB) ----------
    def __getstate__(self) -> tuple[Any, ...]:
        out = np.asarray(self.out, dtype=np.float64)
        return (_FORMAT, self.hist.tobytes(), out.tobytes(), self._n)

    def __setstate__(self, state: Any) -> None:
        self.warmup = 1
        self.queue = None
        if isinstance(state, tuple) and state and state[0] == _FORMAT:
            _, hist, out, self._n = state
            self.hist = np.frombuffer(hist).reshape(len(FIELDS), HISTORY).copy()
            self.out = tuple(np.frombuffer(out).tolist())
            return
        # a snapshot of the incremental operators (before the history engine): migrated
        self.hist, out, self._n = legacy.from_operators(state[1])
        self.out = tuple(out)

    @classmethod
    def restored(cls, hist: F64, out: tuple[float, ...], n: int) -> Alpha158:
        """An indicator with the given history and last values (a migrated snapshot)."""
        a = cls()
        a.hist, a.out, a._n = hist, out, n
        return a


class _Window:
    """Unpickling target of the incremental engine's per-window operators (see legacy)."""
