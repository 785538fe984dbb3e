"""Incremental window operators with Qlib's (pandas') edge semantics, one value per ``push``.

Every operator keeps a fixed ring buffer of its last ``w`` inputs and a few running
numbers, so its state is bounded whatever the length of the series. Windows follow
``pandas.Series.rolling(w, min_periods=1)``, which is what Qlib's rolling operators call:

* at a series' start a window holds the rows available so far (``Mean(x, 5)`` on day one is
  ``x``);
* ``NaN`` inputs occupy a row of the window but are skipped by the statistic; a window
  without any valid input gives ``NaN``;
* a window whose valid inputs are all equal has a mean of exactly that value and a variance
  of exactly 0 (pandas tracks the run of equal trailing values for the same reason), so
  ratios guarded by ``+1e-12`` stay exact on flat stretches.

Running sums are refreshed from the ring buffer every ``w`` pushes (amortised O(1)), so
rounding drift never accumulates beyond one window's worth of updates; a sum of squared
deviations that loses three digits to cancellation in one push (a large deviation leaving a
nearly flat window) is refreshed at once. A refresh sums the window oldest first, left to
right (:func:`seqsum`), so :mod:`indicators.alpha158.vector` repeats it bit for bit.

Costs per push: :class:`Moments`, :class:`RollingSum`, :class:`PairMoments`,
:class:`Regression` O(1); :class:`Extremum` O(1) amortised (monotonic deque);
:class:`OrderStats` O(log w) (a sorted list of the window).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from sortedcontainers import SortedList

NAN = math.nan
#: A sum of squares that falls below this fraction of its value in one push has lost
#: digits to cancellation: it is then recomputed from the window (O(w), rare).
_CANCEL = 1e-3


def _sq(d: float) -> float:
    """``d * d``, correctly rounded (``d ** 2`` calls libm ``pow``, which is not always), so
    numpy's element-wise product gives the same bits (:mod:`indicators.alpha158.vector`)."""
    return d * d


def seqsum(values: Iterable[float]) -> float:
    """Left-to-right float sum, as ``np.add.accumulate`` along a row does (a refresh sums at
    most 60 terms: <= 60 ulp of their absolute sum, and the vectorised engine reproduces
    it bit for bit, which :func:`math.fsum` would not allow at numpy speed).

    >>> seqsum([0.1, 0.2, 0.3]), seqsum([])
    (0.6000000000000001, 0.0)
    """
    acc = 0.0
    for v in values:
        acc += v
    return acc


class _Ring:
    """The last ``w`` inputs (``NaN`` for missing), the oldest at ``buf[pos]``."""

    __slots__ = ("buf", "pos", "since", "w")

    def __init__(self, w: int) -> None:
        if w < 1:
            raise ValueError(f"window must be >= 1, got {w}")
        self.w = w
        self.buf = [NAN] * w
        self.pos = 0
        self.since = 0

    def _swap(self, x: float) -> float:
        """Store ``x`` in place of the oldest input; return the input that left."""
        pos = self.pos
        old = self.buf[pos]
        self.buf[pos] = x
        self.pos = pos + 1 if pos + 1 < self.w else 0
        return old

    def _due(self) -> bool:
        """True once every ``w`` pushes: time to refresh the running sums from ``buf``."""
        self.since += 1
        if self.since >= self.w:
            self.since = 0
            return True
        return False

    def _ordered(self, buf: list[float]) -> list[float]:
        """``buf`` (this ring's or a parallel one), oldest first."""
        pos = self.pos
        return buf[pos:] + buf[:pos]

    def valid(self) -> list[float]:
        """The valid inputs of the window, oldest first."""
        return [v for v in self._ordered(self.buf) if v == v]


class Moments(_Ring):
    """Rolling count, mean and sample variance (``ddof=1``), ``NaN`` skipped.

    >>> m = Moments(3)
    >>> for x in (1.0, 2.0, 4.0, 8.0):
    ...     m.push(x)
    >>> m.n, m.mean_value(), m.std()
    (3, 4.666666666666667, 3.055050463303893)
    """

    __slots__ = ("last", "m2", "mean", "n", "run")

    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.last = NAN
        self.run = 0

    def push(self, x: float) -> None:
        old = self._swap(x)
        before = self.m2
        if old == old:
            n = self.n - 1
            if n == 0:
                self.mean = 0.0
                self.m2 = 0.0
            else:
                mean = self.mean - (old - self.mean) / n
                self.m2 -= (old - mean) * (old - self.mean)
                self.mean = mean
            self.n = n
        if x == x:
            n = self.n + 1
            d = x - self.mean
            self.mean += d / n
            self.m2 += d * (x - self.mean)
            self.n = n
            if x == self.last:
                self.run += 1
            else:
                self.last = x
                self.run = 1
        if self._due() or self.m2 < before * _CANCEL:
            vals = self.valid()
            self.n = len(vals)
            self.mean = seqsum(vals) / self.n if vals else 0.0
            self.m2 = seqsum(_sq(v - self.mean) for v in vals)

    @property
    def flat(self) -> bool:
        """True when every valid input of the window equals the last one."""
        return self.run >= self.n

    def mean_value(self) -> float:
        """``rolling.mean()``."""
        if self.n == 0:
            return NAN
        return self.last if self.flat else self.mean

    def std(self) -> float:
        """``rolling.std()`` (sample, ``ddof=1``; ``NaN`` below two valid inputs)."""
        if self.n < 2:
            return NAN
        if self.flat:
            return 0.0
        return math.sqrt(max(self.m2, 0.0) / (self.n - 1))


class RollingSum(_Ring):
    """Rolling sum of the valid inputs (``NaN`` when the window has none).

    >>> s = RollingSum(2)
    >>> for x in (math.nan, 1.5, 2.0, 0.25):
    ...     s.push(x)
    >>> s.value()
    2.25
    """

    __slots__ = ("last", "n", "run", "total")

    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.n = 0
        self.total = 0.0
        self.last = NAN
        self.run = 0

    def push(self, x: float) -> None:
        old = self._swap(x)
        if old == old:
            self.n -= 1
            self.total -= old
        if x == x:
            self.n += 1
            self.total += x
            if x == self.last:
                self.run += 1
            else:
                self.last = x
                self.run = 1
        if self._due():
            vals = self.valid()
            self.n = len(vals)
            self.total = seqsum(vals)

    def value(self) -> float:
        if self.n == 0:
            return NAN
        return self.last * self.n if self.run >= self.n else self.total


class PairMoments(_Ring):
    """Rolling Pearson correlation of two inputs over the rows where both are valid.

    This is ``x.rolling(w, min_periods=1).corr(y)``: ``NaN`` below two valid pairs. pandas
    turns ``±inf`` into ``NaN`` before any rolling operation; callers do the same here.
    Qlib's extra guard (a flat input) is applied by the caller.

    >>> p = PairMoments(4)
    >>> for x, y in ((1.0, 2.0), (2.0, 4.5), (3.0, 5.5), (4.0, 8.5)):
    ...     p.push(x, y)
    >>> round(p.corr(), 12)
    0.984315031223
    """

    __slots__ = ("cxy", "m2x", "m2y", "mx", "my", "n", "ybuf")

    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.ybuf = [NAN] * w
        self.n = 0
        self.mx = self.my = self.m2x = self.m2y = self.cxy = 0.0

    def push(self, x: float, y: float) -> None:
        """Add one pair; a pair with a missing (``NaN``) member is skipped."""
        pos = self.pos
        oy = self.ybuf[pos]
        ox = self._swap(x)
        self.ybuf[pos] = y
        m2x, m2y = self.m2x, self.m2y
        if ox == ox and oy == oy:
            self._remove(ox, oy)
        if x == x and y == y:
            self._add(x, y)
        if self._due() or self.m2x < m2x * _CANCEL or self.m2y < m2y * _CANCEL:
            self._refresh()

    def _add(self, x: float, y: float) -> None:
        n = self.n + 1
        dx = x - self.mx
        dy = y - self.my
        self.mx += dx / n
        self.my += dy / n
        self.m2x += dx * (x - self.mx)
        self.m2y += dy * (y - self.my)
        self.cxy += dx * (y - self.my)
        self.n = n

    def _remove(self, x: float, y: float) -> None:
        n = self.n - 1
        if n == 0:
            self.n = 0
            self.mx = self.my = self.m2x = self.m2y = self.cxy = 0.0
            return
        mx = self.mx - (x - self.mx) / n
        my = self.my - (y - self.my) / n
        self.m2x -= (x - mx) * (x - self.mx)
        self.m2y -= (y - my) * (y - self.my)
        self.cxy -= (x - mx) * (y - self.my)
        self.mx, self.my, self.n = mx, my, n

    def _refresh(self) -> None:
        pairs = [
            (x, y)
            for x, y in zip(self._ordered(self.buf), self._ordered(self.ybuf), strict=True)
            if x == x and y == y
        ]
        n = self.n = len(pairs)
        if not n:
            self.mx = self.my = self.m2x = self.m2y = self.cxy = 0.0
            return
        self.mx = seqsum(p[0] for p in pairs) / n
        self.my = seqsum(p[1] for p in pairs) / n
        self.m2x = seqsum(_sq(p[0] - self.mx) for p in pairs)
        self.m2y = seqsum(_sq(p[1] - self.my) for p in pairs)
        self.cxy = seqsum((p[0] - self.mx) * (p[1] - self.my) for p in pairs)

    def corr(self) -> float:
        if self.n < 2:
            return NAN
        den = max(self.m2x, 0.0) * max(self.m2y, 0.0)
        return self.cxy / math.sqrt(den) if den > 0.0 else NAN


class Regression(_Ring):
    """Qlib's rolling regression of an input on its row position in the window.

    The positions are ``1..w`` with the newest row at ``w``; ``NaN`` rows keep their
    position and are skipped (Qlib's ``_libs/rolling.pyx``). The inputs are stored minus an
    anchor (refreshed with the sums every ``w`` pushes), so the sums do not cancel.

    >>> r = Regression(5)
    >>> for x in (1.0, 3.0, 2.0, 5.0):
    ...     r.push(x)
    >>> r.slope(), round(r.rsquare(), 12), round(r.resi(), 12)
    (1.1, 0.691428571429, 0.6)
    """

    __slots__ = ("anchor", "n", "sx", "sxx", "sxy", "sy", "syy", "y_last")

    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.anchor = NAN
        self.n = 0
        self.sx = self.sxx = self.sy = self.syy = self.sxy = 0.0
        self.y_last = NAN

    def push(self, x: float) -> None:
        if self.anchor != self.anchor and x == x:
            self.anchor = x
        old = self._swap(x)
        n = self.n
        # Every row moves one position back; the oldest lands on position 0.
        self.sxy -= self.sy
        self.sxx += n - 2.0 * self.sx
        self.sx -= n
        if old == old:
            y0 = old - self.anchor
            self.n = n = n - 1
            self.sy -= y0
            self.syy -= y0 * y0
        w = self.w
        if x == x:
            y = x - self.anchor
            self.n = n + 1
            self.sx += w
            self.sxx += w * w
            self.sy += y
            self.syy += y * y
            self.sxy += w * y
        self.y_last = x
        if self._due():
            self._refresh()

    def _refresh(self) -> None:
        buf, pos = self.buf, self.pos
        rows = [(i + 1.0, v) for i, v in enumerate(buf[pos:] + buf[:pos]) if v == v]
        self.n = len(rows)
        self.anchor = rows[-1][1] if rows else NAN
        ys = [v - self.anchor for _, v in rows]
        self.sx = seqsum(i for i, _ in rows)
        self.sxx = seqsum(i * i for i, _ in rows)
        self.sy = seqsum(ys)
        self.syy = seqsum(y * y for y in ys)
        self.sxy = seqsum(i * y for (i, _), y in zip(rows, ys, strict=True))

    def _num_den(self) -> tuple[float, float]:
        n = self.n
        return n * self.sxy - self.sx * self.sy, n * self.sxx - self.sx * self.sx

    def slope(self) -> float:
        num, den = self._num_den()
        return num / den if den > 0.0 else NAN

    def rsquare(self) -> float:
        num, den = self._num_den()
        vy = self.n * self.syy - self.sy * self.sy
        if den <= 0.0 or vy <= 0.0:
            return NAN
        return num * num / (den * vy)

    def resi(self) -> float:
        """Residual of the newest row (``NaN`` when it is missing)."""
        num, den = self._num_den()
        if den <= 0.0 or self.y_last != self.y_last:
            return NAN
        slope = num / den
        n = self.n
        y_last = self.y_last - self.anchor
        return y_last - (self.sy / n + slope * (self.w - self.sx / n))


class Extremum:
    """Rolling max (or min) and its 1-based position in the window, first occurrence.

    ``IdxMax(x, w)`` in Qlib is ``rolling(w, min_periods=1).apply(argmax + 1)``: the
    position counts from the oldest row of the (possibly shorter) window. A monotonic
    deque of ``(index, value)`` gives both in O(1) amortised.

    >>> e = Extremum(3, largest=True)
    >>> for x in (2.0, 5.0, 1.0, 5.0):
    ...     e.push(x)
    >>> e.value(), e.position()
    (5.0, 1)
    """

    __slots__ = ("dq", "largest", "t", "w")

    def __init__(self, w: int, *, largest: bool) -> None:
        self.w = w
        self.largest = largest
        self.dq: deque[tuple[int, float]] = deque()
        self.t = -1

    def push(self, x: float) -> None:
        """Add one input; inputs must not be ``NaN`` (prices of valid bars)."""
        self.t = t = self.t + 1
        dq = self.dq
        if self.largest:
            while dq and dq[-1][1] < x:
                dq.pop()
        else:
            while dq and dq[-1][1] > x:
                dq.pop()
        dq.append((t, x))
        if dq[0][0] <= t - self.w:
            dq.popleft()

    def value(self) -> float:
        return self.dq[0][1]

    def position(self) -> int:
        start = max(0, self.t - self.w + 1)
        return self.dq[0][0] - start + 1


class OrderStats(_Ring):
    """Rolling quantiles (linear interpolation) and percentile rank, O(log w) per push.

    ``quantile(q)`` is ``rolling.quantile(q)``; ``rank()`` is ``rolling.rank(pct=True)``
    of the newest input (ties take the average rank; ``NaN`` when it is missing).

    >>> o = OrderStats(4)
    >>> for x in (3.0, 1.0, 4.0, 1.0, 5.0):
    ...     o.push(x)
    >>> o.quantile(0.8), o.rank()
    (4.4, 1.0)
    """

    __slots__ = ("sorted", "x_last")

    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.sorted = SortedList()
        self.x_last = NAN

    def push(self, x: float) -> None:
        old = self._swap(x)
        if old == old:
            self.sorted.remove(old)
        if x == x:
            self.sorted.add(x)
        self.x_last = x

    def quantile(self, q: float) -> float:
        s = self.sorted
        n = len(s)
        if n == 0:
            return NAN
        idx = q * (n - 1)
        i = int(idx)
        lo = s[i]
        if i == idx:
            return float(lo)
        return float(lo + (s[i + 1] - lo) * (idx - i))

    def rank(self) -> float:
        x = self.x_last
        s = self.sorted
        if x != x or not s:
            return NAN
        lo = s.bisect_left(x)
        hi = s.bisect_right(x)
        return (lo + hi + 1) / 2 / len(s)
