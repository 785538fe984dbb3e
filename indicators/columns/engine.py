"""The classic indicators of every symbol a worker owns as rows of one set of columns.

A stream hands out one :class:`~indicators.feature_set.SymbolState` per symbol. While a
state warms up it is updated per symbol, tick by tick. Once it is ready,
:meth:`ClassicColumns.after` loads it into a row (struct of arrays across symbols) and
attaches it: from then on its ``update`` checks the bar, queues it and returns a list that
:meth:`ClassicColumns.flush` fills in place once per micro-batch. The queued bars are
applied in rounds, the *k*-th bar of every row at once with numpy; a row holding more bars
than ``min_round`` rows share (a busy symbol of a skewed feed) is written back to its
per-symbol indicators and updated bar by bar, because a round costs about as much for one
row as for hundreds; it stays per symbol (:attr:`ClassicColumns.busy`) until a batch holds
no more of its ticks than the rounds, then joins the columns again. Either way every value
is the per-symbol path's, bit for bit (tests/unit/indicators/test_columns.py).

An attached state pickles as its per-symbol indicators (written back from the row first),
so snapshots keep their format and restore anywhere.

>>> from indicators.bar import Bar
>>> from indicators.feature_set import FeatureSet
>>> fs = FeatureSet.default()
>>> columns, state, plain = ClassicColumns(fs), fs.new_state(), fs.new_state()
>>> bars = [Bar(60_000 * i, 10.0 + i % 7, 11.0 + i % 7, 9.0, 10.5, 100.0) for i in range(80)]
>>> for bar in bars:
...     values = state.update(bar)
...     columns.after("X", state, values)
...     _ = columns.flush()
>>> want = [plain.update(b) for b in bars][-1]
>>> state.columns is columns, np.array_equal(values, want, equal_nan=True)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from indicators.bar import Bar
from indicators.columns.base import BarColumns, Column, Floats, grown
from indicators.columns.kinds import COLUMNS

if TYPE_CHECKING:
    from indicators.feature_set import FeatureSet, SymbolState

#: Fewest rows a round must hold for the rows with more bars than that to stay in columns
#: (the others go per symbol for the batch). A round costs ~0.2 ms whatever its width, a
#: per-symbol update ~25 µs: break-even near 8 (benchmarks/bench_features.py --in-process).
MIN_ROUND = 8


def covers(feature_set: FeatureSet) -> bool:
    """True when every indicator of ``feature_set`` has a column (the classic kinds)."""
    return all(type(ind) in COLUMNS for ind in feature_set.new_state().indicators)


class ClassicColumns:
    """Rows of columns, a queue of their bars and the lists to fill (see module)."""

    def __init__(
        self, feature_set: FeatureSet, capacity: int = 64, min_round: int = MIN_ROUND
    ) -> None:
        proto = feature_set.new_state()
        if not covers(feature_set):
            raise ValueError("ClassicColumns holds classic indicator kinds only")
        self.version = proto.version
        self.min_round = max(1, min_round)
        self.columns: list[tuple[int, slice, Column]] = []
        """(output offset, its indicators, column) of each column, in feature-set order: a
        run of indicators of one kind shares a column when the kind banks."""
        inds = proto.indicators
        at = start = 0
        while start < len(inds):
            kind = COLUMNS[type(inds[start])]
            end = start + 1
            while kind.bank and end < len(inds) and type(inds[end]) is type(inds[start]):
                end += 1
            self.columns.append((at, slice(start, end), kind(inds[start:end], capacity)))
            at += sum(i.n_outputs for i in inds[start:end])
            start = end
        self.width = at
        self.capacity = capacity
        self.last: Floats = np.full((capacity, at), np.nan)
        """Each row's latest outputs (the per-symbol indicators' ``out`` when stored)."""
        self.row_of: dict[str, int] = {}
        self.owners: list[SymbolState | None] = []
        self.symbols: list[str] = []
        """The symbol of each row."""
        self.busy: set[str] = set()
        """Symbols left per symbol: a batch held more of their ticks than its rounds. One
        comes back as a row after a batch holding no more of its ticks than the rounds."""
        self._seen: dict[str, int] = {}
        self._rows: list[int] = []
        self._bars: list[Bar] = []
        self._targets: list[list[float]] = []

    # --- rows -------------------------------------------------------------------------
    def after(self, symbol: str, state: SymbolState, values: list[float]) -> None:
        """Call after ``state.update(bar)`` returned ``values`` (then the side columns):
        binds ``values`` when the bar was queued, or attaches ``state`` once it is ready."""
        if state.columns is self:
            self._targets.append(values)
        elif state.ready and state.version == self.version:
            if symbol in self.busy:
                self._seen[symbol] = self._seen.get(symbol, 0) + 1
            else:
                self.attach(symbol, state)

    def attach(self, symbol: str, state: SymbolState) -> None:
        """Load a ready ``state`` into ``symbol``'s row; its bars queue here from now on."""
        row = self.row_of.get(symbol)
        if row is None:
            row = self.row_of[symbol] = len(self.owners)
            self.owners.append(None)
            self.symbols.append(symbol)
            if row >= self.capacity:
                self._grow(2 * self.capacity)
        previous = self.owners[row]
        if previous is not None and previous is not state:
            previous.detach_columns()  # an older state of the symbol keeps its own values
        state.detach_columns()
        self._load(row, state)
        self.owners[row] = state
        state.attach_columns(self, row)

    def _grow(self, capacity: int) -> None:
        for _, _, column in self.columns:
            column.grow(capacity)
        last = grown(self.last, capacity)
        last[self.capacity :] = np.nan
        self.last, self.capacity = last, capacity

    def _load(self, row: int, state: SymbolState) -> None:
        inds = state.indicators
        for _, which, column in self.columns:
            column.load(row, inds[which])
        self.last[row] = list(chain.from_iterable(ind.out for ind in inds))

    def store(self, row: int, state: SymbolState) -> None:
        """Write ``row`` back into ``state``'s per-symbol indicators (before a pickle)."""
        inds = state.indicators
        for _, which, column in self.columns:
            column.store(row, inds[which])
        last, at = self.last[row].tolist(), 0
        for ind in inds:
            ind.out = tuple(last[at : at + ind.n_outputs])
            at += ind.n_outputs

    def detach(self, row: int) -> None:
        """Forget ``row``'s owner (it was written back and left the columns)."""
        self.owners[row] = None

    # --- the batch ----------------------------------------------------------------------
    def queue(self, row: int, bar: Bar) -> None:
        """Take a checked bar of ``row`` (applied at :meth:`flush`)."""
        self._rows.append(row)
        self._bars.append(bar)

    def discard(self) -> None:
        """Drop what is queued (a batch that failed half way)."""
        self._rows, self._bars, self._targets = [], [], []
        self._seen = {}

    def flush(self) -> int:
        """Apply the queued bars and fill the bound lists; returns the bars applied."""
        rows, bars, targets, seen = self._rows, self._bars, self._targets, self._seen
        self.discard()
        if len(rows) != len(targets):
            raise RuntimeError(f"{len(rows)} bars queued but {len(targets)} lists bound")
        if not rows:
            return 0
        counts: dict[int, int] = {}
        rank = []
        for r in rows:
            k = counts.get(r, 0)
            rank.append(k)
            counts[r] = k + 1
        # the rounds the batch's ticks would fill, busy symbols' included
        ordered = sorted([*counts.values(), *seen.values()], reverse=True)
        rounds = max(1, ordered[self.min_round - 1] if len(ordered) >= self.min_round else 1)
        busy = {r for r, c in counts.items() if c > rounds}
        for symbol, count in seen.items():  # quiet again: back to the columns at its next tick
            if count <= rounds:
                self.busy.discard(symbol)
        if busy:
            self._per_symbol(rows, bars, targets, busy)
            keep = [i for i, r in enumerate(rows) if r not in busy]
            rows = [rows[i] for i in keep]
            bars = [bars[i] for i in keep]
            targets = [targets[i] for i in keep]
            rank = [rank[i] for i in keep]
        if rows:
            self._rounds(rows, bars, targets, rank)
        return len(rows) + sum(counts[r] for r in busy)

    def _per_symbol(
        self, rows: list[int], bars: list[Bar], targets: list[list[float]], busy: set[int]
    ) -> None:
        """Busy rows: written back and detached (per symbol from now on: :attr:`busy`),
        their bars applied by their per-symbol indicators."""
        width, owners = self.width, self.owners
        states = {}
        for r in busy:
            state = owners[r]
            assert state is not None
            state.detach_columns()
            states[r] = state
            self.busy.add(self.symbols[r])
        for r, bar, target in zip(rows, bars, targets, strict=True):
            if r in busy:
                target[:width] = states[r].apply(bar)

    def _rounds(
        self, rows: list[int], bars: list[Bar], targets: list[list[float]], rank: list[int]
    ) -> None:
        """The k-th bar of every row at once, for k = 0, 1, ..."""
        order = np.argsort(np.asarray(rank), kind="stable")
        ranks = np.asarray(rank)[order]
        bounds = np.searchsorted(ranks, np.arange(int(ranks[-1]) + 2)).tolist()
        idx = order.tolist()
        rows_arr = np.asarray(rows, np.int64)[order]
        cols = _columns([bars[i] for i in idx])
        width, last = self.width, self.last
        with np.errstate(all="ignore"):
            for k in range(len(bounds) - 1):
                lo, hi = bounds[k], bounds[k + 1]
                r = rows_arr[lo:hi]
                bar = BarColumns._make(c[lo:hi] for c in cols)
                out = np.empty((hi - lo, width))
                for at, _, column in self.columns:
                    column.update(r, bar, out, at)
                last[r] = out
                for i, values in zip(idx[lo:hi], out.tolist(), strict=True):
                    targets[i][:width] = values


def _columns(bars: Sequence[Bar]) -> BarColumns:
    """The fields of ``bars`` as arrays (``None`` quotes as ``NaN``, flagged ``absent``)."""
    ts, _, high, low, close, volume, bid, ask, bid_size, ask_size = zip(*bars, strict=True)
    f = np.float64
    absent = np.fromiter(
        (b is None or a is None for b, a in zip(bid, ask, strict=True)), np.bool_, len(bid)
    )
    return BarColumns(
        np.asarray(ts, np.int64),
        np.asarray(high, f),
        np.asarray(low, f),
        np.asarray(close, f),
        np.asarray(volume, f),
        np.asarray(bid, f),
        np.asarray(ask, f),
        np.asarray(bid_size, f),
        np.asarray(ask_size, f),
        absent,
    )
