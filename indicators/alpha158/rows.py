"""Per-symbol Alpha158 states living as rows of one vectorised engine (the stream's path).

A stream hands out one :class:`~indicators.feature_set.SymbolState` per symbol. For
Alpha158, :meth:`BatchRows.attach` swaps the state's :class:`Alpha158` for an
:class:`Alpha158Row`: a stand-in whose ``update_bar`` only queues the bar for the symbol's
row of a shared :class:`~indicators.alpha158.vector.Alpha158Batch`. The feature stage
registers the feature list the state returned (:meth:`BatchRows.bind`) and calls
:meth:`BatchRows.flush` once per micro-batch: the queued bars are applied in rounds (the
*k*-th queued bar of every symbol) and the 158 values written into the registered lists in
place, so every record gets the per-symbol indicator's values, bit for bit.

A stand-in pickles as its row's arrays (:func:`~indicators.alpha158.vector.row_payload`,
~12 kB of float64, about as small as a per-symbol :class:`Alpha158` and far cheaper to make);
it unpickles as a stand-in on a one-row engine of its own that applies bars at once, until a
:class:`BatchRows` attaches it and copies the row in. A per-symbol :class:`Alpha158` (an
older snapshot) attaches too (:func:`~indicators.alpha158.vector.load_state`).

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
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from indicators.alpha158.state import Alpha158, bar_vwap
from indicators.alpha158.vector import (
    Alpha158Batch,
    load_state,
    put_row_payload,
    row_payload,
    to_state,
)
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
        self._n = 1
        if self.rows.standalone:  # no feature stage flushes for it: apply at once
            self.out = tuple(self.rows.batch.update(np.array([self.row]), *_fields([bar]))[0])
        else:
            self.rows.queue(self.row, bar)

    def update(self, o: float, h: float, lo: float, c: float, v: float, vwap: float) -> None:
        raise TypeError("an Alpha158Row is updated through its BatchRows (update_bar, flush)")

    def __reduce__(self) -> tuple[Any, ...]:
        # A snapshot holds the row's arrays as bytes (queued bars are flushed before any
        # snapshot); pickling costs a copy, not the ~1 ms of building a per-symbol Alpha158.
        return (standalone_row, (row_payload(self.rows.batch, self.row),))

    def to_plain(self) -> Alpha158:
        """The per-symbol :class:`Alpha158` with this row's state."""
        return to_state(self.rows.batch, self.row)


def standalone_row(payload: bytes) -> Alpha158Row:
    """An unpickled row: a one-row engine of its own, updated bar by bar until a
    :class:`BatchRows` attaches it (which copies the row in)."""
    rows = BatchRows(1, standalone=True)
    put_row_payload(rows.batch, 0, payload)
    row = Alpha158Row(rows, 0)
    if row._n:
        row.out = tuple(rows.batch.last_out[0].tolist())
    return row


def _fields(bars: Sequence[Bar]) -> tuple[npt.NDArray[np.float64], ...]:
    """Columns open, high, low, close, volume and ``$vwap`` of ``bars``."""
    o, h, lo, c, v = np.array([(b.open, b.high, b.low, b.close, b.volume) for b in bars]).T
    vwap = np.fromiter(map(bar_vwap, bars), np.float64, len(bars))
    return o, h, lo, c, v, vwap


class BatchRows:
    """Symbols' Alpha158 rows in one engine, a queue of their bars, and the lists to fill."""

    def __init__(self, capacity: int = 64, *, standalone: bool = False) -> None:
        self.standalone = standalone
        """One symbol outside a feature stage: its bars apply at once, nothing is queued."""
        self.batch = Alpha158Batch(capacity)
        self.row_of: dict[str, int] = {}
        self._queued: list[tuple[int, Bar]] = []
        self._targets: list[tuple[list[float], int]] = []
        self._start = 0

    def attach(self, symbol: str, state: IndicatorHolder) -> None:
        """Make ``state``'s Alpha158 (if any) a row of this engine, carrying its values."""
        for i, ind in enumerate(state.indicators):
            if isinstance(ind, Alpha158Row) and ind.rows is self:
                return
            if isinstance(ind, Alpha158):
                row = self._row(symbol)
                if isinstance(ind, Alpha158Row):  # restored, or another engine's: copy the row
                    put_row_payload(self.batch, row, row_payload(ind.rows.batch, ind.row))
                else:  # a per-symbol value (an older snapshot)
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
        seen: dict[int, int] = {}
        rank = np.empty(len(queued), dtype=np.int64)
        for i, r in enumerate(rows.tolist()):
            rank[i] = seen[r] = seen.get(r, -1) + 1
        by_round = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_round], np.arange(int(rank.max()) + 2))
        o, h, lo, c, v, vwap = _fields([b for _, b in queued])
        width = Alpha158.n_outputs
        for k in range(len(bounds) - 1):
            at = by_round[bounds[k] : bounds[k + 1]]
            out = self.batch.update(rows[at], o[at], h[at], lo[at], c[at], v[at], vwap[at])
            for i, values in zip(at.tolist(), out.tolist(), strict=True):
                target, start = targets[i]
                target[start : start + width] = values
        return len(queued)
