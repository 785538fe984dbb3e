"""Per-symbol Alpha158 states living as rows of one vectorised engine (the stream's path).

A stream hands out one :class:`~indicators.feature_set.SymbolState` per symbol. For
Alpha158, :meth:`BatchRows.attach` swaps the state's :class:`Alpha158` for an
:class:`Alpha158Row`: a stand-in whose ``update_bar`` only queues the bar for the symbol's
row of a shared :class:`~indicators.alpha158.vector.Alpha158Batch`. The feature stage
registers the feature list the state returned (:meth:`BatchRows.bind`) and calls
:meth:`BatchRows.flush` once per micro-batch: the queued bars are applied in rounds (the
*k*-th queued bar of every symbol) and the 158 values written into the registered lists in
place, so every record gets the per-symbol indicator's values, bit for bit.

A stand-in pickles as the plain :class:`Alpha158` of its row
(:func:`~indicators.alpha158.vector.to_state`): snapshots keep the per-symbol format, and a
restored state attaches again (:func:`~indicators.alpha158.vector.load_state`).

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

import copyreg
from collections.abc import Sequence
from typing import Any, Protocol, SupportsIndex

import numpy as np

from indicators.alpha158.state import Alpha158, bar_vwap
from indicators.alpha158.vector import Alpha158Batch, load_state, to_state
from indicators.bar import Bar
from indicators.base import Indicator


class IndicatorHolder(Protocol):
    """What :meth:`BatchRows.attach` needs of a :class:`~indicators.feature_set.SymbolState`
    (a protocol: the feature-set module imports this package, not the other way round)."""

    @property
    def indicators(self) -> Sequence[Indicator]: ...

    def replace(self, index: int, indicator: Indicator) -> None: ...


class Alpha158Row(Alpha158):
    """An :class:`Alpha158` whose state is row ``row`` of ``rows``' engine (see module)."""

    __slots__ = ("row", "rows")

    def __init__(self, rows: BatchRows, row: int) -> None:
        Indicator.__init__(self, 1)  # no per-symbol windows: the row holds the state
        self.rows = rows
        self.row = row
        self._n = int(rows.batch.t[row] > 0)

    def update_bar(self, bar: Bar) -> None:
        self.rows.queue(self.row, bar)
        self._n = 1

    def update(self, o: float, h: float, lo: float, c: float, v: float, vwap: float) -> None:
        raise TypeError("an Alpha158Row is updated through its BatchRows (update_bar, flush)")

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        # Snapshots hold the per-symbol value (queued bars are flushed before any snapshot).
        # (A reduce naming the plain class: pickle refuses ``__newobj__`` of another class.)
        plain = to_state(self.rows.batch, self.row).__reduce_ex__(protocol)
        assert isinstance(plain, tuple)
        rebuild = copyreg._reconstructor  # type: ignore[attr-defined]  # stdlib, untyped
        return (rebuild, (Alpha158, object, None), *plain[2:])


class BatchRows:
    """Symbols' Alpha158 rows in one engine, a queue of their bars, and the lists to fill."""

    def __init__(self, capacity: int = 64) -> None:
        self.batch = Alpha158Batch(capacity)
        self.row_of: dict[str, int] = {}
        self._queued: list[tuple[int, Bar]] = []
        self._targets: list[tuple[list[float], int]] = []
        self._start = 0

    def attach(self, symbol: str, state: IndicatorHolder) -> None:
        """Make ``state``'s Alpha158 (if any) a row of this engine, carrying its values."""
        for i, ind in enumerate(state.indicators):
            if isinstance(ind, Alpha158Row):
                if ind.rows is self:
                    return
                ind = to_state(ind.rows.batch, ind.row)  # another engine's row
            if isinstance(ind, Alpha158):
                row = self._row(symbol)
                load_state(self.batch, row, ind)
                stand_in = Alpha158Row(self, row)
                stand_in.out = ind.out
                state.replace(i, stand_in)
                self._start = sum(x.n_outputs for x in state.indicators[:i])
                return

    def _row(self, symbol: str) -> int:
        row = self.row_of.get(symbol)
        if row is None:
            row = self.row_of[symbol] = len(self.row_of)
            if row >= self.batch.n:
                self.batch = self.batch.grown(2 * self.batch.n)
        return row

    def queue(self, row: int, bar: Bar) -> None:
        self._queued.append((row, bar))

    def bind(self, values: list[float]) -> None:
        """The feature list returned for the bar queued last: filled in by :meth:`flush`."""
        self._targets.append((values, self._start))

    def flush(self) -> int:
        """Apply the queued bars in rounds and fill the bound lists; returns the bars applied."""
        queued, targets = self._queued, self._targets
        self._queued, self._targets = [], []
        if len(queued) != len(targets):
            raise RuntimeError(f"{len(queued)} bars queued but {len(targets)} lists bound")
        if not queued:
            return 0
        rows = np.fromiter((r for r, _ in queued), np.int64, len(queued))
        fields = np.array([(b.open, b.high, b.low, b.close, b.volume) for _, b in queued])
        seen: dict[int, int] = {}
        rank = np.empty(len(queued), dtype=np.int64)
        for i, r in enumerate(rows.tolist()):
            rank[i] = seen[r] = seen.get(r, -1) + 1
        by_round = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_round], np.arange(int(rank.max()) + 2))
        o, h, lo, c, v = fields.T
        vwap = np.fromiter((bar_vwap(b) for _, b in queued), np.float64, len(queued))
        width = Alpha158.n_outputs
        for k in range(len(bounds) - 1):
            at = by_round[bounds[k] : bounds[k + 1]]
            out = self.batch.update(rows[at], o[at], h[at], lo[at], c[at], v[at], vwap[at])
            for i, values in zip(at.tolist(), out.tolist(), strict=True):
                target, start = targets[i]
                target[start : start + width] = values
        return len(queued)
