"""Volatility and channels: Bollinger bands, ATR (Wilder), realized volatility, Donchian."""

from __future__ import annotations

import math

from indicators.bar import Bar
from indicators.base import CloseIndicator, Indicator, fmt_param
from indicators.rolling import RollingMax, RollingMin, RollingMoments
from indicators.trend import _check_period


class BollingerBands(CloseIndicator):
    """Bollinger bands of the close (TA-Lib ``BBANDS``, SMA middle, population std).

    Outputs: upper, middle, lower, %B = ``(close - lower) / (upper - lower)`` (0.5 when the
    bands have zero width) and bandwidth = ``(upper - lower) / middle``.

    >>> bb = BollingerBands(4, 2.0)
    >>> for x in [2.0, 4.0, 4.0, 6.0]:
    ...     bb.update(x)
    >>> [round(v, 4) for v in bb.values()]
    [6.8284, 4.0, 1.1716, 0.8536, 1.4142]
    """

    __slots__ = ("_m", "k", "period")
    kind = "bb"
    n_outputs = 5

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = _check_period("period", period)
        if not (isinstance(k, int | float) and 0.0 < k < math.inf):
            raise ValueError(f"k must be a positive number, got {k!r}")
        self.k = float(k)
        super().__init__(warmup=period)
        self._m = RollingMoments(period)

    @property
    def names(self) -> tuple[str, ...]:
        p = f"{self.period}_{fmt_param(self.k)}"
        return tuple(f"bb_{o}_{p}" for o in ("upper", "middle", "lower", "pctb", "width"))

    def params(self) -> dict[str, float]:
        return {"period": self.period, "k": self.k}

    def update(self, x: float) -> None:
        """Add one close."""
        m = self._m
        m.push(x)
        n = self._n
        if n < self.warmup:
            self._n = n = n + 1
            if n < self.warmup:
                return
        mid, var = m.stats()
        half = self.k * math.sqrt(var)
        lower = mid - half
        width = 2.0 * half
        pctb = (x - lower) / width if width > 0.0 else 0.5
        self.out = (mid + half, mid, lower, pctb, width / mid)


class ATR(Indicator):
    """Wilder's average true range (TA-Lib ``ATR``, unstable period 0).

    True range needs the previous close, so the first bar only primes it; the ATR is seeded
    with the mean of the first ``period`` true ranges and smoothed as
    ``atr = (atr * (period - 1) + tr) / period``. Defined from bar ``period + 1``.

    >>> atr = ATR(2)
    >>> for h, l, c in [(11.0, 9.0, 10.0), (12.0, 10.0, 11.0), (11.5, 10.5, 11.0)]:
    ...     atr.update(h, l, c)
    >>> atr.get()
    1.5
    """

    __slots__ = ("_atr", "_prev", "period")
    kind = "atr"

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("period", period)
        super().__init__(warmup=period + 1)
        self._prev = 0.0
        self._atr = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return (f"atr_{self.period}",)

    def params(self) -> dict[str, float]:
        return {"period": self.period}

    def update(self, high: float, low: float, close: float) -> None:
        """Add one bar's high, low and close."""
        pc = self._prev
        self._prev = close
        n = self._n
        tr = high - low
        if n:
            t = high - pc if high > pc else pc - high
            if t > tr:
                tr = t
            t = low - pc if low > pc else pc - low
            if t > tr:
                tr = t
        if n >= self.warmup:
            p = self.period
            atr = self._atr = (self._atr * (p - 1) + tr) / p
            self.out = (atr,)
            return
        if n:
            self._atr += tr
        n += 1
        self._n = n
        if n == self.warmup:
            atr = self._atr = self._atr / self.period
            self.out = (atr,)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.high, bar.low, bar.close)


class RealizedVol(CloseIndicator):
    """Realized volatility: ``sqrt(sum of squared 1-bar log returns over window bars)``.

    Not demeaned, not annualised (multiply by ``sqrt(bars per year / window)`` for that).
    Defined from bar ``window + 1``.

    >>> rv = RealizedVol(2)
    >>> for x in [100.0, 110.0, 100.0]:
    ...     rv.update(x)
    >>> round(rv.get(), 6) == round(math.sqrt(2) * math.log(1.1), 6)
    True
    """

    __slots__ = ("_buf", "_pos", "_prev", "_sum", "window")
    kind = "rvol"

    def __init__(self, window: int = 20) -> None:
        self.window = _check_period("window", window)
        super().__init__(warmup=window + 1)
        self._prev = 0.0
        self._buf = [0.0] * window  # ring of squared returns (RollingSum inlined)
        self._pos = 0
        self._sum = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return (f"rvol_{self.window}",)

    def params(self) -> dict[str, float]:
        return {"window": self.window}

    def update(self, x: float) -> None:
        """Add one close."""
        pc = self._prev
        self._prev = x
        n = self._n
        if n < self.warmup:
            self._n = n + 1
            if not n:
                return
        r = math.log(x / pc)
        r *= r
        buf = self._buf
        i = self._pos
        old = buf[i]
        buf[i] = r
        i += 1
        if i == self.window:  # wrapped: re-sum exactly
            self._pos = 0
            s = self._sum = math.fsum(buf)
        else:
            self._pos = i
            s = self._sum = self._sum + r - old
        if n + 1 >= self.warmup:
            self.out = (math.sqrt(s) if s > 0.0 else 0.0,)


class Donchian(Indicator):
    """Donchian channel: highest high, lowest low and their midpoint over ``period`` bars.

    Same as TA-Lib ``MAX(high)`` / ``MIN(low)``; the current bar is inside the window.

    >>> dc = Donchian(2)
    >>> for h, l in [(3.0, 1.0), (4.0, 2.0), (3.5, 2.5)]:
    ...     dc.update(h, l)
    >>> dc.values()
    (4.0, 2.0, 3.0)
    """

    __slots__ = ("_hh", "_ll", "period")
    kind = "donchian"
    n_outputs = 3

    def __init__(self, period: int = 20) -> None:
        self.period = _check_period("period", period)
        super().__init__(warmup=period)
        self._hh = RollingMax(period)
        self._ll = RollingMin(period)

    @property
    def names(self) -> tuple[str, ...]:
        p = self.period
        return (f"donchian_high_{p}", f"donchian_low_{p}", f"donchian_mid_{p}")

    def params(self) -> dict[str, float]:
        return {"period": self.period}

    def update(self, high: float, low: float) -> None:
        """Add one bar's high and low."""
        h = self._hh.push(high)
        lo = self._ll.push(low)
        n = self._n
        if n < self.warmup:
            self._n = n = n + 1
            if n < self.warmup:
                return
        self.out = (h, lo, 0.5 * (h + lo))

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.high, bar.low)
