"""Volume: on-balance volume, VWAP (rolling and per session), volume z-score."""

from __future__ import annotations

import math

from indicators.bar import Bar
from indicators.base import Indicator
from indicators.rolling import RollingMoments
from indicators.trend import _check_period

DAY_MS = 86_400_000


class OBV(Indicator):
    """On-balance volume (TA-Lib ``OBV``): starts at the first bar's volume, then adds the
    volume on an up close, subtracts it on a down close, keeps it on an unchanged close.

    >>> obv = OBV()
    >>> for c, v in [(10.0, 100.0), (11.0, 50.0), (10.5, 20.0), (10.5, 5.0)]:
    ...     obv.update(c, v)
    >>> obv.get()
    130.0
    """

    __slots__ = ("_obv", "_prev")
    kind = "obv"

    def __init__(self) -> None:
        super().__init__(warmup=1)
        self._prev = 0.0
        self._obv = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return ("obv",)

    def params(self) -> dict[str, float]:
        return {}

    def update(self, close: float, volume: float) -> None:
        """Add one bar's close and volume."""
        if not self._n:
            self._n = 1
            self._obv += volume
        elif close > self._prev:
            self._obv += volume
        elif close < self._prev:
            self._obv -= volume
        self._prev = close
        self.out = (self._obv,)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.close, bar.volume)


class VWAP(Indicator):
    """Volume-weighted average of the typical price ``(high + low + close) / 3`` over the
    last ``window`` bars; the current bar's typical price when the window has no volume.

    >>> vw = VWAP(2)
    >>> for h, l, c, v in [(3.0, 1.0, 2.0, 1.0), (6.0, 3.0, 3.0, 1.0), (5.0, 5.0, 5.0, 2.0)]:
    ...     vw.update(h, l, c, v)
    >>> vw.get()
    4.666666666666667
    """

    __slots__ = ("_pos", "_pv", "_pvbuf", "_v", "_vbuf", "window")
    kind = "vwap"

    def __init__(self, window: int = 20) -> None:
        self.window = _check_period("window", window)
        super().__init__(warmup=window)
        # Two rings with running sums (RollingSum inlined: this is a hot path).
        self._pvbuf = [0.0] * window
        self._vbuf = [0.0] * window
        self._pos = 0
        self._pv = 0.0
        self._v = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return (f"vwap_{self.window}",)

    def params(self) -> dict[str, float]:
        return {"window": self.window}

    def update(self, high: float, low: float, close: float, volume: float) -> None:
        """Add one bar."""
        tp = (high + low + close) / 3.0
        pv = tp * volume
        pvbuf = self._pvbuf
        vbuf = self._vbuf
        i = self._pos
        old_pv = pvbuf[i]
        old_v = vbuf[i]
        pvbuf[i] = pv
        vbuf[i] = volume
        i += 1
        if i == self.window:  # wrapped: re-sum exactly
            self._pos = 0
            spv = self._pv = math.fsum(pvbuf)
            sv = self._v = math.fsum(vbuf)
        else:
            self._pos = i
            spv = self._pv = self._pv + pv - old_pv
            sv = self._v = self._v + volume - old_v
        n = self._n
        if n < self.warmup:
            self._n = n = n + 1
            if n < self.warmup:
                return
        self.out = (spv / sv if sv > 0.0 else tp,)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.high, bar.low, bar.close, bar.volume)


class SessionVWAP(Indicator):
    """Cumulative VWAP of the typical price since the start of the bar's session.

    A session is ``ts_ms // session_ms`` (UTC days by default); the sums reset when it
    changes. On daily bars it equals the bar's typical price; intraday it is the classic
    anchored VWAP. Cumulative sums only add (no subtraction), so they do not drift.

    >>> sv = SessionVWAP()
    >>> sv.update(0, 2.0, 2.0, 2.0, 1.0); sv.update(60_000, 5.0, 5.0, 5.0, 2.0)
    >>> sv.get()
    4.0
    >>> sv.update(DAY_MS, 7.0, 7.0, 7.0, 1.0); sv.get()
    7.0
    """

    __slots__ = ("_pv", "_session", "_v", "session_ms")
    kind = "vwap_session"

    def __init__(self, session_ms: int = DAY_MS) -> None:
        self.session_ms = _check_period("session_ms", session_ms)
        super().__init__(warmup=1)
        self._session = -1
        self._pv = 0.0
        self._v = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        if self.session_ms == DAY_MS:
            return ("vwap_session",)
        return (f"vwap_session_{self.session_ms}",)

    def params(self) -> dict[str, float]:
        return {"session_ms": self.session_ms}

    def update(self, ts_ms: int, high: float, low: float, close: float, volume: float) -> None:
        """Add one bar."""
        tp = (high + low + close) / 3.0
        session = ts_ms // self.session_ms
        if session != self._session:
            self._session = session
            pv = self._pv = tp * volume
            v = self._v = volume + 0.0
        else:
            pv = self._pv = self._pv + tp * volume
            v = self._v = self._v + volume
        self._n = 1
        self.out = (pv / v if v > 0.0 else tp,)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.ts_ms, bar.high, bar.low, bar.close, bar.volume)


class VolumeZScore(Indicator):
    """Z-score of the bar's volume against the last ``window`` volumes (current included):
    ``(v - mean) / std`` with the sample std (``ddof=1``, as pandas ``rolling().std()``);
    0 when the window's volumes are all equal.

    >>> z = VolumeZScore(3)
    >>> for v in [1.0, 2.0, 6.0]:
    ...     z.update(v)
    >>> round(z.get(), 6)
    1.133893
    """

    __slots__ = ("_m", "window")
    kind = "vol_z"

    def __init__(self, window: int = 20) -> None:
        self.window = _check_period("window", window, minimum=2)
        super().__init__(warmup=window)
        self._m = RollingMoments(window)

    @property
    def names(self) -> tuple[str, ...]:
        return (f"vol_z_{self.window}",)

    def params(self) -> dict[str, float]:
        return {"window": self.window}

    def update(self, volume: float) -> None:
        """Add one bar's volume."""
        m = self._m
        m.push(volume)
        n = self._n
        if n < self.warmup:
            self._n = n = n + 1
            if n < self.warmup:
                return
        mean, var = m.stats(1)
        self.out = ((volume - mean) / math.sqrt(var) if var > 0.0 else 0.0,)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.volume)
