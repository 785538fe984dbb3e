"""Moving averages and MACD (TA-Lib seeding conventions, matched exactly)."""

from __future__ import annotations

import math

from indicators.base import CloseIndicator


def _check_period(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class SMA(CloseIndicator):
    """Simple moving average of the close over ``period`` bars (TA-Lib ``SMA``).

    >>> sma = SMA(3)
    >>> for x in [1.0, 2.0]:
    ...     sma.update(x)
    >>> sma.get() is None
    True
    >>> sma.update(6.0)
    >>> sma.get()
    3.0
    """

    __slots__ = ("_buf", "_pos", "_sum", "period")
    kind = "sma"

    def __init__(self, period: int = 20) -> None:
        self.period = _check_period("period", period)
        super().__init__(warmup=period)
        self._buf = [0.0] * period  # a ring (RollingSum inlined: this is a hot path)
        self._pos = 0
        self._sum = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return (f"sma_{self.period}",)

    def params(self) -> dict[str, float]:
        return {"period": self.period}

    def update(self, x: float) -> None:
        """Add one close."""
        buf = self._buf
        i = self._pos
        old = buf[i]
        buf[i] = x
        i += 1
        if i == self.period:  # wrapped: re-sum exactly (the package's drift policy)
            self._pos = 0
            s = self._sum = math.fsum(buf)
        else:
            self._pos = i
            s = self._sum = self._sum + x - old
        n = self._n
        if n < self.warmup:
            self._n = n = n + 1
            if n < self.warmup:
                return
        self.out = (s / self.period,)


class EMA(CloseIndicator):
    """Exponential moving average, ``alpha = 2 / (period + 1)``, seeded TA-Lib's way.

    The first value (bar ``period``) is the SMA of the first ``period`` closes; after that
    ``ema += alpha * (x - ema)``.

    >>> ema = EMA(3)
    >>> for x in [1.0, 2.0, 3.0, 4.0]:
    ...     ema.update(x)
    >>> ema.get()
    3.0
    """

    __slots__ = ("_alpha", "_value", "period")
    kind = "ema"

    def __init__(self, period: int = 20) -> None:
        self.period = _check_period("period", period)
        super().__init__(warmup=period)
        self._alpha = 2.0 / (period + 1)
        self._value = 0.0  # the running sum of the seed while warming up

    @property
    def names(self) -> tuple[str, ...]:
        return (f"ema_{self.period}",)

    def params(self) -> dict[str, float]:
        return {"period": self.period}

    def update(self, x: float) -> None:
        """Add one close."""
        n = self._n
        if n >= self.warmup:
            v = self._value = self._value + self._alpha * (x - self._value)
            self.out = (v,)
            return
        n += 1
        self._n = n
        self._value += x
        if n == self.warmup:
            self._value /= n
            self.out = (self._value,)


class MACD(CloseIndicator):
    """MACD line, signal and histogram with TA-Lib's ``MACD`` conventions.

    Both EMAs start on bar ``slow``: the slow one seeded with the SMA of the first ``slow``
    closes, the fast one with the SMA of the last ``fast`` of them (TA-Lib aligns them so).
    The signal EMA is seeded with the SMA of the first ``signal`` MACD values, so all three
    outputs are defined from bar ``slow + signal - 1`` (TA-Lib's lookback + 1).

    >>> macd = MACD(2, 3, 2)
    >>> for x in [1.0, 2.0, 3.0, 5.0]:
    ...     macd.update(x)
    >>> [round(v, 4) for v in macd.values()]  # same as talib.MACD
    [0.6667, 0.5833, 0.0833]
    """

    __slots__ = ("_ef", "_es", "_kf", "_kg", "_ks", "_macd", "_sig", "fast", "signal", "slow")
    kind = "macd"
    n_outputs = 3

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = _check_period("fast", fast)
        self.slow = _check_period("slow", slow)
        self.signal = _check_period("signal", signal)
        if fast >= slow:
            raise ValueError(f"fast ({fast}) must be < slow ({slow})")
        super().__init__(warmup=slow + signal - 1)
        self._kf = 2.0 / (fast + 1)
        self._ks = 2.0 / (slow + 1)
        self._kg = 2.0 / (signal + 1)
        self._ef = 0.0  # seed sums while warming up
        self._es = 0.0
        self._sig = 0.0
        self._macd = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        p = f"{self.fast}_{self.slow}_{self.signal}"
        return (f"macd_{p}", f"macd_signal_{p}", f"macd_hist_{p}")

    def params(self) -> dict[str, float]:
        return {"fast": self.fast, "slow": self.slow, "signal": self.signal}

    def update(self, x: float) -> None:
        """Add one close."""
        n = self._n
        if n >= self.warmup:
            ef = self._ef = self._ef + self._kf * (x - self._ef)
            es = self._es = self._es + self._ks * (x - self._es)
            m = self._macd = ef - es
            sig = self._sig = self._sig + self._kg * (m - self._sig)
            self.out = (m, sig, m - sig)
            return
        slow = self.slow
        if n < slow:  # seeding both EMAs
            self._es += x
            if n >= slow - self.fast:
                self._ef += x
            if n == slow - 1:
                self._es /= slow
                self._ef /= self.fast
                self._macd = self._sig = self._ef - self._es
        else:  # seeding the signal line
            self._ef += self._kf * (x - self._ef)
            self._es += self._ks * (x - self._es)
            self._macd = self._ef - self._es
            self._sig += self._macd
        n += 1
        self._n = n
        if n == self.warmup:
            m = self._macd
            sig = self._sig = self._sig / self.signal
            self.out = (m, sig, m - sig)
