"""Momentum: RSI (Wilder), stochastic oscillator, log returns over a horizon."""

from __future__ import annotations

import math

from indicators.bar import Bar
from indicators.base import CloseIndicator, Indicator
from indicators.rolling import RollingMax, RollingMin, RollingSum
from indicators.trend import _check_period


class RSI(CloseIndicator):
    """Wilder's relative strength index of the close (TA-Lib ``RSI``, unstable period 0).

    Average gain and loss are seeded with the simple mean of the first ``period`` changes
    and then smoothed as ``avg = (avg * (period - 1) + x) / period``; ``RSI = 100 * g/(g+l)``
    (0 when there was no change at all, as TA-Lib). Defined from bar ``period + 1``.

    >>> rsi = RSI(2)
    >>> for x in [1.0, 2.0, 1.5, 2.5]:
    ...     rsi.update(x)
    >>> round(rsi.get(), 4)
    85.7143
    """

    __slots__ = ("_gain", "_loss", "_prev", "period")
    kind = "rsi"

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("period", period)
        super().__init__(warmup=period + 1)
        self._prev = 0.0
        self._gain = 0.0
        self._loss = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return (f"rsi_{self.period}",)

    def params(self) -> dict[str, float]:
        return {"period": self.period}

    def update(self, x: float) -> None:
        """Add one close."""
        n = self._n
        d = x - self._prev
        self._prev = x
        if n >= self.warmup:
            p = self.period
            if d > 0.0:
                g = self._gain = (self._gain * (p - 1) + d) / p
                lo = self._loss = self._loss * (p - 1) / p
            else:
                g = self._gain = self._gain * (p - 1) / p
                lo = self._loss = (self._loss * (p - 1) - d) / p
            s = g + lo
            self.out = (100.0 * g / s if s else 0.0,)
            return
        if n:
            if d > 0.0:
                self._gain += d
            else:
                self._loss -= d
        n += 1
        self._n = n
        if n == self.warmup:
            g = self._gain = self._gain / self.period
            lo = self._loss = self._loss / self.period
            s = g + lo
            self.out = (100.0 * g / s if s else 0.0,)


class Stochastic(Indicator):
    """Slow stochastic %K and %D (TA-Lib ``STOCH`` with SMA smoothing).

    Fast %K = ``100 * (close - LL) / (HH - LL)`` over ``fastk`` bars (0 when ``HH == LL``),
    %K = SMA(fast %K, ``slowk``), %D = SMA(%K, ``slowd``). Both outputs are defined from bar
    ``fastk + slowk + slowd - 2``, as TA-Lib reports them.

    >>> st = Stochastic(2, 1, 1)
    >>> for h, l, c in [(2.0, 1.0, 1.5), (3.0, 2.0, 2.5)]:
    ...     st.update(h, l, c)
    >>> st.values()
    (75.0, 75.0)
    """

    __slots__ = ("_dsum", "_hh", "_ksum", "_ll", "fastk", "slowd", "slowk")
    kind = "stoch"
    n_outputs = 2

    def __init__(self, fastk: int = 14, slowk: int = 3, slowd: int = 3) -> None:
        self.fastk = _check_period("fastk", fastk)
        self.slowk = _check_period("slowk", slowk)
        self.slowd = _check_period("slowd", slowd)
        super().__init__(warmup=fastk + slowk + slowd - 2)
        self._hh = RollingMax(fastk)
        self._ll = RollingMin(fastk)
        self._ksum = RollingSum(slowk)
        self._dsum = RollingSum(slowd)

    @property
    def names(self) -> tuple[str, ...]:
        p = f"{self.fastk}_{self.slowk}_{self.slowd}"
        return (f"stoch_k_{p}", f"stoch_d_{p}")

    def params(self) -> dict[str, float]:
        return {"fastk": self.fastk, "slowk": self.slowk, "slowd": self.slowd}

    def update(self, high: float, low: float, close: float) -> None:
        """Add one bar's high, low and close."""
        hh = self._hh.push(high)
        ll = self._ll.push(low)
        n = self._n
        if n < self.warmup:
            n += 1
            self._n = n
            if n < self.fastk:
                return
        diff = (hh - ll) / 100.0
        self._ksum.push((close - ll) / diff if diff != 0.0 else 0.0)
        if n < self.fastk + self.slowk - 1:
            return
        k = self._ksum.sum / self.slowk
        self._dsum.push(k)
        if n == self.warmup:
            self.out = (k, self._dsum.sum / self.slowd)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.high, bar.low, bar.close)


class LogReturn(CloseIndicator):
    """Log return of the close over ``horizon`` bars: ``ln(close_t / close_{t-horizon})``.

    Defined from bar ``horizon + 1``. Log (not simple) returns: they add over time and are
    the ones realized volatility is built from.

    >>> r = LogReturn(2)
    >>> for x in [100.0, 105.0, 110.0]:
    ...     r.update(x)
    >>> round(r.get(), 6) == round(math.log(1.1), 6)
    True
    """

    __slots__ = ("_buf", "_pos", "horizon")
    kind = "ret"

    def __init__(self, horizon: int = 1) -> None:
        self.horizon = _check_period("horizon", horizon)
        super().__init__(warmup=horizon + 1)
        self._buf = [0.0] * horizon  # the last `horizon` closes, a ring
        self._pos = 0

    @property
    def names(self) -> tuple[str, ...]:
        return (f"ret_{self.horizon}",)

    def params(self) -> dict[str, float]:
        return {"horizon": self.horizon}

    def update(self, x: float) -> None:
        """Add one close."""
        buf = self._buf
        i = self._pos
        old = buf[i]
        buf[i] = x
        i += 1
        self._pos = 0 if i == self.horizon else i
        n = self._n
        if n < self.warmup:
            n += 1
            self._n = n
            if n < self.warmup:
                return
        self.out = (math.log(x / old),)
