"""The stream's Alpha158: every symbol's bars of a micro-batch computed in one call.

A stream hands out one :class:`~indicators.feature_set.SymbolState` per symbol.
:meth:`BatchRows.attach` points the state's :class:`~indicators.alpha158.state.Alpha158` at
this queue, so its ``update_bar`` only queues the bar; the feature stage registers the
feature list the state returned (:meth:`BatchRows.bind`) and calls :meth:`BatchRows.flush`
once per micro-batch: one :func:`~indicators.alpha158.vector.advance` over every queued bar
(each with its window of its symbol's history and earlier bars of the batch), the values
written into the registered lists in place and the histories moved on. Every record gets
the per-symbol indicator's values, bit for bit (the same function on a batch of one).

The indicator stays the symbol's state (its 60-bar history): a snapshot pickles it without
the queue, and it unpickles as a per-symbol indicator until a :class:`BatchRows` attaches it.

>>> from indicators.bar import Bar
>>> from indicators.feature_set import FeatureSet, spec
>>> fs = FeatureSet([spec("alpha158")])
>>> rows, state = BatchRows(), fs.new_state()
>>> rows.attach("X", state)
>>> values = state.update(Bar(0, 10.0, 10.5, 9.5, 10.2, 1000.0))
>>> rows.bind(values)
>>> rows.flush()
1
>>> single = Alpha158()
>>> single.update_bar(Bar(0, 10.0, 10.5, 9.5, 10.2, 1000.0))
>>> np.array_equal(values, single.out, equal_nan=True)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from indicators.alpha158 import legacy
from indicators.alpha158.state import Alpha158
from indicators.alpha158.vector import advance
from indicators.bar import Bar
from indicators.base import Indicator

_NANS = (float("nan"),) * Alpha158.n_outputs


class IndicatorHolder(Protocol):
    """What :meth:`BatchRows.attach` needs of a :class:`~indicators.feature_set.SymbolState`
    (a protocol: the feature-set module imports this package, not the other way round)."""

    @property
    def indicators(self) -> Sequence[Indicator]: ...


class BatchRows:
    """The queued bars of a micro-batch, their symbols' indicators and the lists to fill."""

    def __init__(self) -> None:
        self._queued: list[tuple[Alpha158, Bar]] = []
        self._targets: list[tuple[list[float], int]] = []
        self._start = 0

    def attach(self, symbol: str, state: IndicatorHolder) -> None:
        """Queue the bars of ``state``'s Alpha158 (if any) here from now on."""
        start = 0
        for ind in state.indicators:
            if isinstance(ind, Alpha158):
                ind.queue = self
                self._start = start
                return
            start += ind.n_outputs

    def push(self, indicator: Alpha158, bar: Bar) -> None:
        self._queued.append((indicator, bar))

    def bind(self, values: list[float]) -> None:
        """The feature list returned for the bar queued last: :meth:`flush` inserts the
        bar's 158 values at the block's place (the queued indicator contributed none)."""
        self._targets.append((values, self._start))

    def discard(self) -> None:
        """Drop what is queued (a batch that failed half way): the bars are not applied, and
        their indicators' ``out`` is all-``NaN`` instead of empty."""
        for ind, _ in self._queued:
            if not ind.out:
                ind.out = _NANS
        self._queued, self._targets = [], []

    def flush(self) -> int:
        """Compute the queued bars and fill the bound lists; returns the bars applied."""
        queued, targets = self._queued, self._targets
        self._queued, self._targets = [], []
        if len(queued) != len(targets):
            raise RuntimeError(f"{len(queued)} bars queued but {len(targets)} lists bound")
        if not queued:
            return 0
        index: dict[int, int] = {}
        symbols: list[Alpha158] = []
        group = np.empty(len(queued), dtype=np.int64)
        last: list[int] = []  # each symbol's last bar of the batch
        fields = []
        for i, (ind, b) in enumerate(queued):
            g = index.get(id(ind))
            if g is None:
                g = index[id(ind)] = len(symbols)
                symbols.append(ind)
                last.append(i)
            else:
                last[g] = i
            group[i] = g
            fields.append((b.open, b.high, b.low, b.close, b.volume))
        bars = np.empty((len(queued), 6))
        bars[:, :5] = fields
        bars[:, 5] = (bars[:, 1] + bars[:, 2] + bars[:, 3]) / 3.0  # bar_vwap
        out, hist = advance(np.stack([s.hist for s in symbols]), group, bars)
        rows = out.tolist()
        for (target, start), values in zip(targets, rows, strict=True):
            target[start:start] = values  # the state left the block out (``out`` empty)
        for ind, h, i in zip(symbols, hist, last, strict=True):
            ind.hist = h.copy()
            ind.out = tuple(rows[i])
        return len(queued)


def standalone_row(payload: bytes) -> Alpha158:
    """Unpickling target of the row engine's snapshots (before the history engine): the
    per-symbol indicator with the same history (:mod:`indicators.alpha158.legacy`)."""
    hist, out, n = legacy.from_row_payload(payload)
    return Alpha158.restored(hist, tuple(out), n)
