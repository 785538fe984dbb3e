"""Fixed-size ring buffers with O(1) running aggregates that do not drift.

Numerical policy (one for the whole package): running sums are updated by adding the new
value and subtracting the evicted one, and are **re-summed exactly with** :func:`math.fsum`
**each time the ring wraps** (every ``size`` pushes: amortised O(1)), so rounding error never
accumulates beyond one window. Second moments are kept as sums of *shifted* values
``x - K``, with ``K`` re-centred on the window mean at each wrap, which avoids the
cancellation of the textbook ``E[x²] - E[x]²`` when the mean is large against the spread.

Buffers are preallocated lists of floats, so the pickled size is constant once full.
"""

from __future__ import annotations

import math

_INF = math.inf


class RollingSum:
    """Sum of the last ``size`` values.

    >>> s = RollingSum(3)
    >>> for x in [1.0, 2.0, 3.0, 4.0]:
    ...     _ = s.push(x)
    >>> s.sum, s.count
    (9.0, 3)
    """

    __slots__ = ("_buf", "_full", "_pos", "_size", "sum")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._buf = [0.0] * size
        self._size = size
        self._pos = 0
        self._full = False
        self.sum = 0.0

    @property
    def count(self) -> int:
        """How many values the window holds."""
        return self._size if self._full else self._pos

    def push(self, x: float) -> float:
        """Add ``x``; return the value it evicted (``0.0`` while filling)."""
        buf = self._buf
        i = self._pos
        old = buf[i]
        buf[i] = x
        i += 1
        if i == self._size:  # wrapped: re-sum exactly
            self._pos = 0
            self._full = True
            self.sum = math.fsum(buf)
        else:
            self._pos = i
            self.sum += x - old
        return old


class RollingMoments:
    """Count, mean and variance of the last ``size`` values (shifted sums, re-summed).

    >>> m = RollingMoments(4)
    >>> for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]:
    ...     m.push(x)
    >>> m.mean(), m.var(ddof=0)
    (6.5, 2.75)
    """

    __slots__ = ("_buf", "_full", "_pos", "_s1", "_s2", "_shift", "_size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._buf = [0.0] * size
        self._size = size
        self._pos = 0
        self._full = False
        self._shift = 0.0
        self._s1 = 0.0
        self._s2 = 0.0

    @property
    def count(self) -> int:
        """How many values the window holds."""
        return self._size if self._full else self._pos

    def push(self, x: float) -> None:
        """Add ``x``, evicting the oldest value once full."""
        buf = self._buf
        i = self._pos
        k = self._shift
        if self._full:
            d = x - k
            e = buf[i] - k
            self._s1 += d - e
            self._s2 += d * d - e * e
        elif i:
            d = x - k
            self._s1 += d
            self._s2 += d * d
        else:  # first value: centre the sums on it
            self._shift = x
        buf[i] = x
        i += 1
        if i == self._size:  # wrapped: re-centre on the mean and re-sum exactly
            self._pos = 0
            self._full = True
            k = self._shift = math.fsum(buf) / i
            ds = [v - k for v in buf]
            self._s1 = math.fsum(ds)
            self._s2 = math.fsum([d * d for d in ds])
        else:
            self._pos = i

    def stats(self, ddof: int = 0) -> tuple[float, float]:
        """``(mean, var(ddof))`` in one call (the hot path of Bollinger and z-scores)."""
        n = self._size if self._full else self._pos
        if n <= ddof:
            return (self.mean(), math.nan)
        s1 = self._s1
        v = (self._s2 - s1 * s1 / n) / (n - ddof)
        return (self._shift + s1 / n, v if v > 0.0 else 0.0)

    def mean(self) -> float:
        """Mean of the window (``NaN`` when empty)."""
        n = self._size if self._full else self._pos
        return self._shift + self._s1 / n if n else math.nan

    def var(self, ddof: int = 0) -> float:
        """Variance with ``ddof`` delta degrees of freedom (never negative)."""
        n = self._size if self._full else self._pos
        if n <= ddof:
            return math.nan
        s1 = self._s1
        v = (self._s2 - s1 * s1 / n) / (n - ddof)
        return v if v > 0.0 else 0.0


class RollingMax:
    """Maximum of the last ``size`` values.

    The maximum is rescanned (C-speed ``max`` over the ring) only when the value leaving
    the window was the maximum, as TA-Lib does: amortised O(1) on market data, worst case
    O(size) on a strictly falling series.

    >>> m = RollingMax(3)
    >>> [m.push(x) for x in [1.0, 5.0, 2.0, 3.0, 1.0, 0.0]]
    [1.0, 5.0, 5.0, 5.0, 3.0, 3.0]
    """

    __slots__ = ("_buf", "_pos", "value")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._buf = [-_INF] * size
        self._pos = 0
        self.value = -_INF

    def push(self, x: float) -> float:
        """Add ``x``; return the maximum of the window."""
        buf = self._buf
        i = self._pos
        old = buf[i]
        buf[i] = x
        i += 1
        self._pos = 0 if i == len(buf) else i
        m = self.value
        if x >= m:
            self.value = m = x
        elif old == m:
            self.value = m = max(buf)
        return m


class RollingMin:
    """Minimum of the last ``size`` values (mirror of :class:`RollingMax`).

    >>> m = RollingMin(2)
    >>> [m.push(x) for x in [3.0, 1.0, 2.0, 4.0]]
    [3.0, 1.0, 1.0, 2.0]
    """

    __slots__ = ("_buf", "_pos", "value")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._buf = [_INF] * size
        self._pos = 0
        self.value = _INF

    def push(self, x: float) -> float:
        """Add ``x``; return the minimum of the window."""
        buf = self._buf
        i = self._pos
        old = buf[i]
        buf[i] = x
        i += 1
        self._pos = 0 if i == len(buf) else i
        m = self.value
        if x <= m:
            self.value = m = x
        elif old == m:
            self.value = m = min(buf)
        return m
