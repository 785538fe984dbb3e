"""A column for each classic indicator kind: the warm update of ``indicators/*.py`` on rows.

Each ``update`` is its per-symbol twin's warm branch, operation for operation (the twin's
docstring has the formula and its TA-Lib convention); ``load``/``store`` name the twin's
state fields. Banks (``bank = True``) hold a run of indicators of one kind, broadcasting
the bar over a ``K`` axis. :data:`COLUMNS` maps an indicator class to its column class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from indicators.base import Indicator
from indicators.columns.base import (
    BarColumns,
    Column,
    Floats,
    Ints,
    Moments,
    Ring,
    Rings,
    logs,
)
from indicators.microstructure import Quotes
from indicators.momentum import RSI, LogReturn, Stochastic
from indicators.trend import EMA, MACD, SMA
from indicators.volatility import ATR, BollingerBands, Donchian, RealizedVol
from indicators.volume import OBV, VWAP, SessionVWAP, VolumeZScore

_INF = np.inf


class SMAColumn(Column):
    bank = True
    parts = ("rings",)
    arrays = ("sum",)

    def __init__(self, inds: Sequence[SMA], capacity: int) -> None:
        self.periods = np.array([i.period for i in inds], np.float64)
        self.rings = Rings([i.period for i in inds], capacity)
        self.sum: Floats = np.zeros((capacity, len(inds)))

    def load(self, row: int, inds: Sequence[Any]) -> None:
        for k, ind in enumerate(inds):
            self.rings.put(row, k, ind._buf, ind._pos)
            self.sum[row, k] = ind._sum

    def store(self, row: int, inds: Sequence[Any]) -> None:
        for k, ind in enumerate(inds):
            ind._buf, ind._pos = self.rings.get(row, k)
            ind._sum = float(self.sum[row, k])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        x = bar.close[:, None]
        old, wrap = self.rings.push(rows, x)
        s = self.sum[rows] + x - old
        self.rings.resum(rows, wrap, s)
        self.sum[rows] = s
        out[:, at : at + len(self.periods)] = s / self.periods


class EMAColumn(Column):
    bank = True
    arrays = ("value",)

    def __init__(self, inds: Sequence[EMA], capacity: int) -> None:
        self.alpha = np.array([i._alpha for i in inds])
        self.value: Floats = np.zeros((capacity, len(inds)))

    def load(self, row: int, inds: Sequence[Any]) -> None:
        self.value[row] = [i._value for i in inds]

    def store(self, row: int, inds: Sequence[Any]) -> None:
        for ind, v in zip(inds, self.value[row].tolist(), strict=True):
            ind._value = v

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        v = self.value[rows]
        v = v + self.alpha * (bar.close[:, None] - v)
        self.value[rows] = v
        out[:, at : at + len(self.alpha)] = v


class MACDColumn(Column):
    n_outputs = 3
    arrays = ("ef", "es", "sig")

    def __init__(self, inds: Sequence[MACD], capacity: int) -> None:
        (ind,) = inds
        self.kf, self.ks, self.kg = ind._kf, ind._ks, ind._kg
        self.ef: Floats = np.zeros(capacity)
        self.es: Floats = np.zeros(capacity)
        self.sig: Floats = np.zeros(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.ef[row], self.es[row], self.sig[row] = ind._ef, ind._es, ind._sig

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        ind._ef, ind._es, ind._sig = float(self.ef[row]), float(self.es[row]), float(self.sig[row])
        ind._macd = ind._ef - ind._es

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        x = bar.close
        ef = self.ef[rows]
        es = self.es[rows]
        sig = self.sig[rows]
        ef = ef + self.kf * (x - ef)
        es = es + self.ks * (x - es)
        m = ef - es
        sig = sig + self.kg * (m - sig)
        self.ef[rows], self.es[rows], self.sig[rows] = ef, es, sig
        out[:, at] = m
        out[:, at + 1] = sig
        out[:, at + 2] = m - sig


class RSIColumn(Column):
    bank = True
    arrays = ("prev", "gain", "loss")

    def __init__(self, inds: Sequence[RSI], capacity: int) -> None:
        self.p = np.array([i.period for i in inds], np.float64)
        self.p1 = self.p - 1.0
        self.prev: Floats = np.zeros(capacity)
        self.gain: Floats = np.zeros((capacity, len(inds)))
        self.loss: Floats = np.zeros((capacity, len(inds)))

    def load(self, row: int, inds: Sequence[Any]) -> None:
        self.prev[row] = inds[0]._prev  # every RSI has seen the same closes
        self.gain[row] = [i._gain for i in inds]
        self.loss[row] = [i._loss for i in inds]

    def store(self, row: int, inds: Sequence[Any]) -> None:
        prev = float(self.prev[row])
        for ind, g, lo in zip(inds, self.gain[row].tolist(), self.loss[row].tolist(), strict=True):
            ind._prev, ind._gain, ind._loss = prev, g, lo

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        x, p, p1 = bar.close, self.p, self.p1
        d = (x - self.prev[rows])[:, None]
        self.prev[rows] = x
        g, lo = self.gain[rows], self.loss[rows]
        up = d > 0.0
        g = np.where(up, (g * p1 + d) / p, g * p1 / p)
        lo = np.where(up, lo * p1 / p, (lo * p1 - d) / p)
        self.gain[rows], self.loss[rows] = g, lo
        s = g + lo
        some = s != 0.0
        out[:, at : at + len(p)] = np.where(some, 100.0 * g / np.where(some, s, 1.0), 0.0)


class StochasticColumn(Column):
    n_outputs = 2
    parts = ("hh", "ll", "ksum", "dsum")
    arrays = ("hv", "lv", "ks", "ds")

    def __init__(self, inds: Sequence[Stochastic], capacity: int) -> None:
        (ind,) = inds
        self.slowk, self.slowd = ind.slowk, ind.slowd
        self.hh = Rings([ind.fastk], capacity, -np.inf)
        self.ll = Rings([ind.fastk], capacity, np.inf)
        self.hv: Floats = np.zeros((capacity, 1))
        self.lv: Floats = np.zeros((capacity, 1))
        self.ksum = Ring(ind.slowk, capacity)
        self.dsum = Ring(ind.slowd, capacity)
        self.ks: Floats = np.zeros(capacity)
        self.ds: Floats = np.zeros(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.hh.put(row, 0, ind._hh._buf, ind._hh._pos)
        self.ll.put(row, 0, ind._ll._buf, ind._ll._pos)
        self.hv[row, 0], self.lv[row, 0] = ind._hh.value, ind._ll.value
        self.ksum.put(row, ind._ksum._buf, ind._ksum._pos)
        self.dsum.put(row, ind._dsum._buf, ind._dsum._pos)
        self.ks[row], self.ds[row] = ind._ksum.sum, ind._dsum.sum

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        ind._hh._buf, ind._hh._pos = self.hh.get(row, 0)
        ind._ll._buf, ind._ll._pos = self.ll.get(row, 0)
        ind._hh.value, ind._ll.value = float(self.hv[row, 0]), float(self.lv[row, 0])
        ind._ksum._buf, ind._ksum._pos = self.ksum.get(row)
        ind._dsum._buf, ind._dsum._pos = self.dsum.get(row)
        ind._ksum._full = ind._dsum._full = True
        ind._ksum.sum, ind._dsum.sum = float(self.ks[row]), float(self.ds[row])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        hh = self.hh.extreme(rows, bar.high[:, None], self.hv, largest=True)[:, 0]
        ll = self.ll.extreme(rows, bar.low[:, None], self.lv, largest=False)[:, 0]
        diff = (hh - ll) / 100.0
        nz = diff != 0.0
        fast = np.where(nz, (bar.close - ll) / np.where(nz, diff, 1.0), 0.0)
        k = _rolling_sum(self.ksum, self.ks, rows, fast) / self.slowk
        out[:, at] = k
        out[:, at + 1] = _rolling_sum(self.dsum, self.ds, rows, k) / self.slowd


def _rolling_sum(ring: Ring, sums: Floats, rows: Ints, x: Floats) -> Floats:
    """:class:`~indicators.rolling.RollingSum` push on each row: ``sum + (x - old)``."""
    old, wrap = ring.push(rows, x)
    s = sums[rows] + (x - old)
    ring.resum(rows, wrap, s)
    sums[rows] = s
    return s


class LogReturnColumn(Column):
    bank = True
    parts = ("rings",)

    def __init__(self, inds: Sequence[LogReturn], capacity: int) -> None:
        self.rings = Rings([i.horizon for i in inds], capacity)
        self.k = len(inds)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        for k, ind in enumerate(inds):
            self.rings.put(row, k, ind._buf, ind._pos)

    def store(self, row: int, inds: Sequence[Any]) -> None:
        for k, ind in enumerate(inds):
            ind._buf, ind._pos = self.rings.get(row, k)

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        x = bar.close[:, None]
        old, _ = self.rings.push(rows, x)
        out[:, at : at + self.k] = logs((x / old).ravel()).reshape(old.shape)


class BollingerColumn(Column):
    n_outputs = 5
    parts = ("m",)

    def __init__(self, inds: Sequence[BollingerBands], capacity: int) -> None:
        (ind,) = inds
        self.k = ind.k
        self.m = Moments(ind.period, capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.m.load(row, ind._m)

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.m.store(row, ind._m)

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        x = bar.close
        mid, var = self.m.stats(*self.m.push(rows, x), ddof=0)
        half = self.k * np.sqrt(var)
        lower = mid - half
        width = 2.0 * half
        wide = width > 0.0
        out[:, at] = mid + half
        out[:, at + 1] = mid
        out[:, at + 2] = lower
        out[:, at + 3] = np.where(wide, (x - lower) / np.where(wide, width, 1.0), 0.5)
        out[:, at + 4] = width / mid


class ATRColumn(Column):
    arrays = ("prev", "atr")

    def __init__(self, inds: Sequence[ATR], capacity: int) -> None:
        (ind,) = inds
        self.period = ind.period
        self.prev: Floats = np.zeros(capacity)
        self.atr: Floats = np.zeros(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.prev[row], self.atr[row] = ind._prev, ind._atr

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        ind._prev, ind._atr = float(self.prev[row]), float(self.atr[row])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        h, lo, p = bar.high, bar.low, self.period
        pc = self.prev[rows]
        self.prev[rows] = bar.close
        # |a - b| is exactly the per-symbol ``a - b if a > b else b - a``
        tr = np.maximum(np.maximum(h - lo, np.abs(h - pc)), np.abs(lo - pc))
        atr = (self.atr[rows] * (p - 1) + tr) / p
        self.atr[rows] = atr
        out[:, at] = atr


class RealizedVolColumn(Column):
    bank = True
    parts = ("rings",)
    arrays = ("prev", "sum")

    def __init__(self, inds: Sequence[RealizedVol], capacity: int) -> None:
        self.rings = Rings([i.window for i in inds], capacity)
        self.prev: Floats = np.zeros(capacity)
        self.sum: Floats = np.zeros((capacity, len(inds)))
        self.k = len(inds)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        self.prev[row] = inds[0]._prev  # every one has seen the same closes
        for k, ind in enumerate(inds):
            self.rings.put(row, k, ind._buf, ind._pos)
            self.sum[row, k] = ind._sum

    def store(self, row: int, inds: Sequence[Any]) -> None:
        prev = float(self.prev[row])
        for k, ind in enumerate(inds):
            ind._buf, ind._pos = self.rings.get(row, k)
            ind._prev, ind._sum = prev, float(self.sum[row, k])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        x = bar.close
        r = logs(x / self.prev[rows])  # the same squared return enters every window
        self.prev[rows] = x
        r *= r
        r2 = r[:, None]
        old, wrap = self.rings.push(rows, r2)
        s = self.sum[rows] + r2 - old
        self.rings.resum(rows, wrap, s)
        self.sum[rows] = s
        out[:, at : at + self.k] = np.sqrt(np.where(s > 0.0, s, 0.0))


class DonchianColumn(Column):
    bank = True
    n_outputs = 3
    parts = ("hh", "ll")
    arrays = ("hv", "lv")

    def __init__(self, inds: Sequence[Donchian], capacity: int) -> None:
        self.hh = Rings([i.period for i in inds], capacity, -np.inf)
        self.ll = Rings([i.period for i in inds], capacity, np.inf)
        self.hv: Floats = np.zeros((capacity, len(inds)))
        self.lv: Floats = np.zeros((capacity, len(inds)))
        self.k = len(inds)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        for k, ind in enumerate(inds):
            self.hh.put(row, k, ind._hh._buf, ind._hh._pos)
            self.ll.put(row, k, ind._ll._buf, ind._ll._pos)
            self.hv[row, k], self.lv[row, k] = ind._hh.value, ind._ll.value

    def store(self, row: int, inds: Sequence[Any]) -> None:
        for k, ind in enumerate(inds):
            ind._hh._buf, ind._hh._pos = self.hh.get(row, k)
            ind._ll._buf, ind._ll._pos = self.ll.get(row, k)
            ind._hh.value, ind._ll.value = float(self.hv[row, k]), float(self.lv[row, k])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        h = self.hh.extreme(rows, bar.high[:, None], self.hv, largest=True)
        lo = self.ll.extreme(rows, bar.low[:, None], self.lv, largest=False)
        mid = 0.5 * (h + lo)
        for k in range(self.k):  # outputs: high, low, mid of each period in turn
            out[:, at + 3 * k] = h[:, k]
            out[:, at + 3 * k + 1] = lo[:, k]
            out[:, at + 3 * k + 2] = mid[:, k]


class OBVColumn(Column):
    arrays = ("prev", "obv")

    def __init__(self, inds: Sequence[OBV], capacity: int) -> None:
        self.prev: Floats = np.zeros(capacity)
        self.obv: Floats = np.zeros(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.prev[row], self.obv[row] = ind._prev, ind._obv

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        ind._prev, ind._obv = float(self.prev[row]), float(self.obv[row])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        c, v = bar.close, bar.volume
        prev, obv = self.prev[rows], self.obv[rows]
        obv = np.where(c > prev, obv + v, np.where(c < prev, obv - v, obv))
        self.prev[rows], self.obv[rows] = c, obv
        out[:, at] = obv


class VWAPColumn(Column):
    parts = ("pvs", "vs")
    arrays = ("pv", "v")

    def __init__(self, inds: Sequence[VWAP], capacity: int) -> None:
        (ind,) = inds
        self.pvs = Ring(ind.window, capacity)
        self.vs = Ring(ind.window, capacity)
        self.pv: Floats = np.zeros(capacity)
        self.v: Floats = np.zeros(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.pvs.put(row, ind._pvbuf, ind._pos)
        self.vs.put(row, ind._vbuf, ind._pos)
        self.pv[row], self.v[row] = ind._pv, ind._v

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        ind._pvbuf, ind._pos = self.pvs.get(row)
        ind._vbuf, _ = self.vs.get(row)
        ind._pv, ind._v = float(self.pv[row]), float(self.v[row])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        volume = bar.volume
        tp = (bar.high + bar.low + bar.close) / 3.0
        pv = tp * volume
        old_pv, wrap = self.pvs.push(rows, pv)
        old_v, _ = self.vs.push(rows, volume)
        spv = self.pv[rows] + pv - old_pv
        sv = self.v[rows] + volume - old_v
        self.pvs.resum(rows, wrap, spv)
        self.vs.resum(rows, wrap, sv)
        self.pv[rows], self.v[rows] = spv, sv
        some = sv > 0.0
        out[:, at] = np.where(some, spv / np.where(some, sv, 1.0), tp)


class SessionVWAPColumn(Column):
    arrays = ("session", "pv", "v")

    def __init__(self, inds: Sequence[SessionVWAP], capacity: int) -> None:
        (ind,) = inds
        self.session_ms = ind.session_ms
        self.session = np.zeros(capacity, np.int64)
        self.pv: Floats = np.zeros(capacity)
        self.v: Floats = np.zeros(capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.session[row], self.pv[row], self.v[row] = ind._session, ind._pv, ind._v

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        ind._session = int(self.session[row])
        ind._pv, ind._v = float(self.pv[row]), float(self.v[row])

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        volume = bar.volume
        tp = (bar.high + bar.low + bar.close) / 3.0
        session = bar.ts // self.session_ms
        same = session == self.session[rows]
        pv = np.where(same, self.pv[rows] + tp * volume, tp * volume)
        v = np.where(same, self.v[rows] + volume, volume + 0.0)
        self.session[rows], self.pv[rows], self.v[rows] = session, pv, v
        some = v > 0.0
        out[:, at] = np.where(some, pv / np.where(some, v, 1.0), tp)


class VolumeZScoreColumn(Column):
    parts = ("m",)

    def __init__(self, inds: Sequence[VolumeZScore], capacity: int) -> None:
        (ind,) = inds
        self.m = Moments(ind.window, capacity)

    def load(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.m.load(row, ind._m)

    def store(self, row: int, inds: Sequence[Any]) -> None:
        (ind,) = inds
        self.m.store(row, ind._m)

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        volume = bar.volume
        mean, var = self.m.stats(*self.m.push(rows, volume), ddof=1)
        some = var > 0.0
        out[:, at] = np.where(some, (volume - mean) / np.sqrt(np.where(some, var, 1.0)), 0.0)


class QuotesColumn(Column):
    n_outputs = 4

    def __init__(self, inds: Sequence[Quotes], capacity: int) -> None:
        """Stateless."""

    def load(self, row: int, inds: Sequence[Any]) -> None:
        """Nothing to load: the outputs are the latest bar's."""

    def store(self, row: int, inds: Sequence[Any]) -> None:
        """Nothing to store."""

    def update(self, rows: Ints, bar: BarColumns, out: Floats, at: int) -> None:
        bid, ask, bs, asz = bar.bid, bar.ask, bar.bid_size, bar.ask_size
        priced = (bid > 0.0) & (bid < _INF) & (ask > 0.0) & (ask < _INF) & ~bar.absent
        spread = ask - bid
        mid = 0.5 * (bid + ask)
        out[:, at] = np.where(priced, spread, np.nan)
        out[:, at + 1] = np.where(priced, mid, np.nan)
        out[:, at + 2] = np.where(priced, spread / np.where(priced, mid, 1.0), np.nan)
        total = bs + asz
        sized = (bs >= 0.0) & (asz >= 0.0) & (total > 0.0) & (total < _INF) & ~bar.absent
        imb = (bs - asz) / np.where(sized, total, 1.0)
        out[:, at + 3] = np.where(sized, imb, np.nan)


#: Indicator class → its column class (the kinds a ClassicColumns engine can hold).
COLUMNS: dict[type[Indicator], Any] = {
    SMA: SMAColumn,
    EMA: EMAColumn,
    MACD: MACDColumn,
    RSI: RSIColumn,
    Stochastic: StochasticColumn,
    LogReturn: LogReturnColumn,
    BollingerBands: BollingerColumn,
    ATR: ATRColumn,
    RealizedVol: RealizedVolColumn,
    Donchian: DonchianColumn,
    OBV: OBVColumn,
    VWAP: VWAPColumn,
    SessionVWAP: SessionVWAPColumn,
    VolumeZScore: VolumeZScoreColumn,
    Quotes: QuotesColumn,
}
