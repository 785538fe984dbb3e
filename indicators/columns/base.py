"""The pieces every column indicator is built from: bar columns, rings and moments.

A *column* holds one indicator's state for every row (symbol) of a
:class:`~indicators.columns.engine.ClassicColumns` as arrays whose first axis is the row,
and updates a set of distinct rows at once with numpy. It repeats the per-symbol
indicator's floating-point operations in the same order (``(s + x) - old`` is not
``s + (x - old)``), and re-sums a ring exactly with :func:`math.fsum` on the rows that
wrap, so every value is the per-symbol indicator's bit for bit. Columns only carry warm
state (every ring full): a symbol is updated per symbol until its state is ready, then
loaded into a row (``load``), and written back (``store``) whenever its per-symbol value is
needed (a snapshot, a batch of many ticks of one symbol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class BarColumns(NamedTuple):
    """The fields of one round's bars (one bar per row), as arrays."""

    ts: Ints
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    bid: Floats
    """``NaN`` where the bar had no bid (``None``); see ``absent``."""
    ask: Floats
    bid_size: Floats
    ask_size: Floats
    absent: Bools
    """True where the bar's bid or ask was ``None`` (its quote features are undefined)."""


def grown(array: npt.NDArray[Any], capacity: int) -> npt.NDArray[Any]:
    """``array`` with its first axis extended to ``capacity`` rows (zeros)."""
    new = np.zeros((capacity, *array.shape[1:]), array.dtype)
    new[: len(array)] = array
    return new


def logs(ratio: Floats) -> Floats:
    """``math.log`` of each element (numpy's ``log`` may differ from libm's by an ulp)."""
    return np.fromiter(map(math.log, ratio.tolist()), np.float64, len(ratio))


class Rings:
    """``K`` rings per row, of sizes ``sizes`` (padded to the largest), written at once,
    with the position of each ring's next write."""

    __slots__ = ("buf", "fill", "kk", "pos", "sizes")

    def __init__(self, sizes: Sequence[int], capacity: int, fill: float = 0.0) -> None:
        self.sizes: Ints = np.asarray(sizes, np.int64)
        self.kk: Ints = np.arange(len(sizes))
        self.fill = fill
        """The value of the padding beyond a shorter ring (-inf / inf: neutral in extremes)."""
        self.buf: Floats = np.full((capacity, len(sizes), max(sizes)), fill)
        self.pos: Ints = np.zeros((capacity, len(sizes)), np.int64)

    def grow(self, capacity: int) -> None:
        n = len(self.buf)
        self.buf = grown(self.buf, capacity)
        self.buf[n:] = self.fill
        self.pos = grown(self.pos, capacity)

    def put(self, row: int, k: int, values: list[float], pos: int) -> None:
        """Load a per-symbol ring (its list and next position) as ring ``k`` of ``row``."""
        self.buf[row, k, : len(values)] = values
        self.pos[row, k] = pos

    def get(self, row: int, k: int) -> tuple[list[float], int]:
        """Ring ``k`` of ``row`` as a per-symbol ring: (list, next position)."""
        return self.buf[row, k, : self.sizes[k]].tolist(), int(self.pos[row, k])

    def ring(self, row: int, k: int) -> list[float]:
        values: list[float] = self.buf[row, k, : self.sizes[k]].tolist()
        return values

    def push(self, rows: Ints, x: Floats) -> tuple[Floats, Bools]:
        """Write ``x`` (``rows × K``, or broadcast to it) at each ring's position; return the
        evicted values and which rings wrapped (back to 0: the per-symbol code re-sums)."""
        i = self.pos[rows]
        at = (rows[:, None], self.kk, i)
        old = self.buf[at]
        self.buf[at] = x
        i += 1
        wrap = i == self.sizes
        i[wrap] = 0
        self.pos[rows] = i
        return old, wrap

    def resum(self, rows: Ints, wrap: Bools, sums: Floats) -> None:
        """``sums[j, k] = fsum(ring k of rows[j])`` where ``wrap[j, k]`` (the drift policy)."""
        if wrap.any():
            fsum, ring = math.fsum, self.ring
            for j, k in zip(*np.nonzero(wrap), strict=True):
                sums[j, k] = fsum(ring(int(rows[j]), int(k)))

    def extreme(self, rows: Ints, x: Floats, value: Floats, largest: bool) -> Floats:
        """Push ``x`` and return each ring's maximum (``largest``) or minimum, kept in
        ``value`` as :class:`~indicators.rolling.RollingMax` / ``RollingMin`` keep theirs
        (rings filled with ``-inf`` for maxima, ``inf`` for minima):
        the new value if it is at least as extreme, a rescan if the evicted one was it."""
        old, _ = self.push(rows, x)
        m = value[rows]
        beats = x >= m if largest else x <= m
        new = np.where(beats, x, m)
        stale = (old == m) & ~beats
        if stale.any():  # rescan those rings (the padding is neutral: see ``fill``)
            js, ks = np.nonzero(stale)
            window = self.buf[rows[js], ks]
            new[js, ks] = window.max(axis=1) if largest else window.min(axis=1)
        value[rows] = new
        return new


class Ring:
    """One ring per row: :class:`Rings` with ``K = 1`` and flat arrays in and out."""

    __slots__ = ("rings",)

    def __init__(self, size: int, capacity: int) -> None:
        self.rings = Rings([size], capacity)

    def grow(self, capacity: int) -> None:
        self.rings.grow(capacity)

    def put(self, row: int, values: list[float], pos: int) -> None:
        self.rings.put(row, 0, values, pos)

    def get(self, row: int) -> tuple[list[float], int]:
        return self.rings.get(row, 0)

    @property
    def size(self) -> int:
        return int(self.rings.sizes[0])

    def ring(self, row: int) -> list[float]:
        return self.rings.ring(row, 0)

    def push(self, rows: Ints, x: Floats) -> tuple[Floats, Bools]:
        old, wrap = self.rings.push(rows, x[:, None])
        return old[:, 0], wrap[:, 0]

    def resum(self, rows: Ints, wrap: Bools, sums: Floats) -> None:
        """``sums[j] = fsum(ring of rows[j])`` where ``wrap[j]``."""
        if wrap.any():
            for j in np.flatnonzero(wrap).tolist():
                sums[j] = math.fsum(self.ring(int(rows[j])))


class Moments:
    """:class:`~indicators.rolling.RollingMoments` of a full window, for every row."""

    __slots__ = ("ring", "s1", "s2", "shift")

    def __init__(self, size: int, capacity: int) -> None:
        self.ring = Ring(size, capacity)
        self.shift: Floats = np.zeros(capacity)
        self.s1: Floats = np.zeros(capacity)
        self.s2: Floats = np.zeros(capacity)

    def grow(self, capacity: int) -> None:
        self.ring.grow(capacity)
        self.shift, self.s1, self.s2 = (grown(a, capacity) for a in (self.shift, self.s1, self.s2))

    def load(self, row: int, m: Any) -> None:
        """From a full :class:`~indicators.rolling.RollingMoments`."""
        if not m._full:
            raise ValueError("a column holds full windows only")
        self.ring.put(row, m._buf, m._pos)
        self.shift[row], self.s1[row], self.s2[row] = m._shift, m._s1, m._s2

    def store(self, row: int, m: Any) -> None:
        m._buf, m._pos = self.ring.get(row)
        m._full = True
        m._shift, m._s1, m._s2 = float(self.shift[row]), float(self.s1[row]), float(self.s2[row])

    def push(self, rows: Ints, x: Floats) -> tuple[Floats, Floats, Floats]:
        """``RollingMoments.push`` on each row; returns (shift, s1, s2) after it."""
        k = self.shift[rows]
        old, wrap = self.ring.push(rows, x)
        d = x - k
        e = old - k
        s1 = self.s1[rows] + (d - e)
        s2 = self.s2[rows] + (d * d - e * e)
        if wrap.any():  # re-centre on the mean and re-sum exactly, as the per-symbol code
            fsum, size, ring = math.fsum, self.ring.size, self.ring.ring
            for j in np.flatnonzero(wrap).tolist():
                values = ring(int(rows[j]))
                c = fsum(values) / size
                ds = [v - c for v in values]
                k[j], s1[j], s2[j] = c, fsum(ds), fsum([v * v for v in ds])
        self.shift[rows], self.s1[rows], self.s2[rows] = k, s1, s2
        return k, s1, s2

    def stats(self, k: Floats, s1: Floats, s2: Floats, ddof: int) -> tuple[Floats, Floats]:
        """``RollingMoments.stats(ddof)`` of a full window: (mean, variance)."""
        n = self.ring.size
        v = (s2 - s1 * s1 / n) / (n - ddof)
        return k + s1 / n, np.where(v > 0.0, v, 0.0)


class Column:
    """One indicator kind's state for every row (see the module docstring).

    A column holds ``K`` indicators of its kind that follow each other in the feature set
    (``sma_5 … sma_50``: one ``K × rows`` update instead of ``K``; ``bank`` says whether
    the kind takes ``K > 1``). ``arrays`` names the per-row arrays and ``parts`` the rings or
    moments to grow with the rows; ``load``/``store`` copy a row from/to the warm
    per-symbol indicators (their ``out`` is the engine's business); ``update`` applies one
    bar to each of ``rows`` and writes the outputs to ``out[:, at:at + width]``.
    """

    n_outputs: ClassVar[int] = 1
    bank: ClassVar[bool] = False
    arrays: ClassVar[tuple[str, ...]] = ()
    parts: ClassVar[tuple[str, ...]] = ()

    def grow(self, capacity: int) -> None:
        for name in self.arrays:
            setattr(self, name, grown(getattr(self, name), capacity))
        for name in self.parts:
            getattr(self, name).grow(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        raise NotImplementedError

    def store(self, row: int, inds: Sequence[Any]) -> None:
        raise NotImplementedError

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        raise NotImplementedError
