"""Alpha158 as one incremental indicator: a bar in, Qlib's 158 values out.

Semantics are Qlib's (pyqlib 0.9.7), computed in float64 (Qlib returns float32):

* rolling operators use the rows available so far at a series' start (``MA5`` is 1.0 on
  day one); ``Ref($close, d)`` is ``NaN`` for the first ``d`` bars, and so is everything
  built on a ``NaN`` (``ROC60`` from bar 61, ``STD5``/``VSTD5`` from bar 2, ``SUMP``,
  ``CORD``, ``WVMA`` from bar 2 or 3); ``$close>Ref($close, 1)`` is False (0) on day one;
* ``Std`` is the sample deviation (``ddof=1``); ``Rank`` the percentile rank of the newest
  close with ties averaged; ``IdxMax``/``IdxMin`` the 1-based position of the first extreme
  counted from the oldest row of the window; ``Quantile`` interpolates linearly;
* ``Slope``/``Rsquare``/``Resi`` regress the window on row positions ``1..w``;
  ``Rsquare`` and ``Corr`` are ``NaN`` where an input's rolling std is <= 2e-5
  (``np.isclose(std, 0, atol=2e-05)`` in Qlib); the ``+1e-12`` guards are kept as written;
* ``$vwap``: tickcast bars carry none, so a bar's VWAP is its typical price
  ``(high + low + close) / 3`` (:func:`bar_vwap`).

>>> a = Alpha158()
>>> a.update_bar(Bar(0, 10.0, 10.5, 9.5, 10.2, 1000.0))
>>> values = dict(zip(a.names, a.out, strict=True))
>>> values["MA5"], values["RANK60"], values["IMAX5"], math.isnan(values["STD5"])
(1.0, 1.0, 0.2, True)
"""

from __future__ import annotations

import math
from typing import ClassVar

from indicators.alpha158.definitions import NAMES, ROLLING, WINDOWS
from indicators.alpha158.windows import (
    Extremum,
    Moments,
    OrderStats,
    PairMoments,
    Regression,
    RollingSum,
)
from indicators.bar import Bar
from indicators.base import Indicator

NAN = math.nan
_GUARD = 1e-12
_FLAT_STD = 2e-05  # Qlib: np.isclose(rolling std, 0, atol=2e-05) -> NaN for Rsquare and Corr
_N_OPS = len(ROLLING)
_N_WIN = len(WINDOWS)
_LAG = max(WINDOWS) + 1


def bar_vwap(bar: Bar) -> float:
    """tickcast's ``$vwap`` of a bar: the typical price ``(high + low + close) / 3``.

    >>> bar_vwap(Bar(0, 10.0, 12.0, 9.0, 12.0, 5.0))
    11.0
    """
    return (bar.high + bar.low + bar.close) / 3.0


def _ratio(num: float, den: float) -> float:
    """``num / den`` with numpy's conventions (``x/0`` is ``±inf``, ``0/0`` is ``NaN``)."""
    if den == 0.0:
        if num == 0.0 or num != num:
            return NAN
        return math.copysign(math.inf, num)
    return num / den


def _log(x: float) -> float:
    """``np.log``: ``NaN`` below 0, ``-inf`` at 0."""
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else NAN


def _flat(std: float) -> bool:
    return std <= _FLAT_STD  # False for NaN, as np.isclose


class _Window:
    """Every operator Alpha158 runs over one window length ``w``."""

    __slots__ = (
        "close",
        "cord",
        "cord_l",
        "cord_r",
        "corr",
        "dn",
        "gain",
        "high",
        "logv",
        "loss",
        "low",
        "move",
        "order",
        "reg",
        "up",
        "vgain",
        "vloss",
        "vmove",
        "vol",
        "w",
        "wv",
    )

    def __init__(self, w: int) -> None:
        self.w = w
        self.close = Moments(w)
        self.reg = Regression(w)
        self.order = OrderStats(w)
        self.high = Extremum(w, largest=True)
        self.low = Extremum(w, largest=False)
        self.logv = Moments(w)
        self.corr = PairMoments(w)
        self.cord = PairMoments(w)
        self.cord_l = Moments(w)
        self.cord_r = Moments(w)
        self.up = RollingSum(w)
        self.dn = RollingSum(w)
        self.gain = RollingSum(w)
        self.loss = RollingSum(w)
        self.move = RollingSum(w)
        self.vol = Moments(w)
        self.wv = Moments(w)
        self.vgain = RollingSum(w)
        self.vloss = RollingSum(w)
        self.vmove = RollingSum(w)


class Alpha158(Indicator):
    """Qlib's Alpha158, updated bar by bar; ``out`` holds the 158 values in Qlib's order.

    Values exist from the first bar, as in Qlib (``NaN`` where Qlib's are, e.g. ``ROC60``
    for 60 bars); :attr:`defined_after` is the bar count from which every feature can be
    defined. State: ring buffers of at most 61 values per operator, constant in size.
    """

    __slots__ = ("_lag", "_t", "_wins", "pc", "pv")

    kind: ClassVar[str] = "alpha158"
    n_outputs: ClassVar[int] = len(NAMES)
    #: Bars after which no feature is ``NaN`` by construction (``ROC60`` needs 61).
    defined_after: ClassVar[int] = _LAG

    def __init__(self) -> None:
        super().__init__(1)
        self._wins = tuple(_Window(w) for w in WINDOWS)
        self._lag = [NAN] * _LAG
        self._t = 0
        self.pc = NAN
        self.pv = NAN

    @property
    def names(self) -> tuple[str, ...]:
        return NAMES

    def params(self) -> dict[str, float]:
        return {}

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.open, bar.high, bar.low, bar.close, bar.volume, bar_vwap(bar))

    def update(self, o: float, h: float, lo: float, c: float, v: float, vwap: float) -> None:
        """Apply one bar's fields; ``out`` then holds its 158 features."""
        pc, pv = self.pc, self.pv
        t = self._t
        lag = self._lag
        lag[t % _LAG] = c
        rng = h - lo + _GUARD
        out = [
            (c - o) / o,
            (h - lo) / o,
            (c - o) / rng,
            (h - max(o, c)) / o,
            (h - max(o, c)) / rng,
            (min(o, c) - lo) / o,
            (min(o, c) - lo) / rng,
            (2 * c - h - lo) / o,
            (2 * c - h - lo) / rng,
            o / c,
            h / c,
            lo / c,
            vwap / c,
        ]
        out.extend([NAN] * (_N_OPS * _N_WIN))
        d = c - pc
        dv = v - pv
        up = 1.0 if c > pc else 0.0
        dn = 1.0 if c < pc else 0.0
        logv = _log(v + 1.0)
        r1 = _ratio(c, pc)
        lr = _log(_ratio(v, pv) + 1.0)
        wv = abs(r1 - 1.0) * v
        gain = max(d, 0.0) if d == d else NAN  # np.maximum propagates NaN
        loss = max(pc - c, 0.0) if d == d else NAN
        move = abs(d)
        vgain = max(dv, 0.0) if dv == dv else NAN
        vloss = max(pv - v, 0.0) if dv == dv else NAN
        vmove = abs(dv)
        # pandas turns ±inf into NaN before rolling (a previous volume of 0 makes lr inf).
        finite_l = r1 if abs(r1) != math.inf else NAN
        finite_r = lr if abs(lr) != math.inf else NAN
        for j, win in enumerate(self._wins):
            w = win.w
            win.close.push(c)
            win.reg.push(c)
            win.order.push(c)
            win.high.push(h)
            win.low.push(lo)
            win.logv.push(logv)
            win.corr.push(c, logv)
            win.cord.push(finite_l, finite_r)
            win.cord_l.push(finite_l)
            win.cord_r.push(finite_r)
            win.up.push(up)
            win.dn.push(dn)
            win.gain.push(gain)
            win.loss.push(loss)
            win.move.push(move)
            win.vol.push(v)
            win.wv.push(wv)
            win.vgain.push(vgain)
            win.vloss.push(vloss)
            win.vmove.push(vmove)
            std_c = win.close.std()
            maxh, minl = win.high.value(), win.low.value()
            imax, imin = win.high.position(), win.low.position()
            rows = win.up.n
            cntp = win.up.value() / rows
            cntn = win.dn.value() / rows
            den = win.move.value() + _GUARD
            vden = win.vmove.value() + _GUARD
            sp, sn = win.gain.value(), win.loss.value()
            vsp, vsn = win.vgain.value(), win.vloss.value()
            values = (
                (lag[(t - w) % _LAG] if t >= w else NAN) / c,
                win.close.mean_value() / c,
                std_c / c,
                win.reg.slope() / c,
                NAN if _flat(std_c) else win.reg.rsquare(),
                win.reg.resi() / c,
                maxh / c,
                minl / c,
                win.order.quantile(0.8) / c,
                win.order.quantile(0.2) / c,
                win.order.rank(),
                (c - minl) / (maxh - minl + _GUARD),
                imax / w,
                imin / w,
                (imax - imin) / w,
                NAN if _flat(std_c) or _flat(win.logv.std()) else win.corr.corr(),
                NAN if _flat(win.cord_l.std()) or _flat(win.cord_r.std()) else win.cord.corr(),
                cntp,
                cntn,
                cntp - cntn,
                sp / den,
                sn / den,
                (sp - sn) / den,
                win.vol.mean_value() / (v + _GUARD),
                win.vol.std() / (v + _GUARD),
                win.wv.std() / (win.wv.mean_value() + _GUARD),
                vsp / vden,
                vsn / vden,
                (vsp - vsn) / vden,
            )
            out[13 + j :: _N_WIN] = values
        self.out = tuple(out)
        self.pc, self.pv = c, v
        self._t = t + 1
        if self._n < self.warmup:
            self._n += 1
