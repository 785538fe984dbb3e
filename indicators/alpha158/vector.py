"""Alpha158 across many symbols at once: the per-symbol operators as numpy expressions.

:class:`Alpha158Batch` keeps the state of ``n`` symbols as columns (a struct of arrays):
one history ring of the last 61 inputs per input series, and the running numbers of every
window operator shaped ``[n, series, window]``. :meth:`Alpha158Batch.update` applies one
*round* — at most one bar per symbol — with a fixed number of numpy calls whatever the
number of symbols, so the Python cost of a bar shrinks with the width of the round.

Every branch of :mod:`indicators.alpha158.windows` (missing inputs, flat runs, the periodic
and the cancellation refreshes) is a masked expression here, in the same operation order,
so the float64 results are bit-for-bit those of :class:`~indicators.alpha158.state.Alpha158`
(element-wise numpy arithmetic is IEEE, as Python's; logarithms go through :func:`math.log`,
as numpy's may differ by an ulp; refreshes sum a row left to right with
``np.add.accumulate``, as :func:`~indicators.alpha158.windows.seqsum` does, only on the rows
due). :func:`to_state`/:func:`load_state` convert a row to and from a per-symbol
:class:`Alpha158` value, the format state snapshots keep.

>>> batch = Alpha158Batch(2)
>>> rows = np.array([0, 1])
>>> out = batch.update(rows, *np.array([[10.0, 20.0], [10.5, 21.0], [9.5, 19.0],
...                                       [10.2, 20.5], [1e3, 5e3], [10.1, 20.2]]))
>>> single = Alpha158()
>>> single.update(10.0, 10.5, 9.5, 10.2, 1e3, 10.1)
>>> np.array_equal(out[0], np.array(single.out), equal_nan=True)
True
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt
from sortedcontainers import SortedList

from indicators.alpha158.definitions import NAMES, ROLLING, WINDOWS
from indicators.alpha158.state import Alpha158, _Window
from indicators.alpha158.windows import Extremum, _Ring

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NAN = math.nan
_GUARD = 1e-12
_FLAT_STD = 2e-05
_CANCEL = 1e-3
_L = max(WINDOWS) + 1  # history ring: the 60-window plus the close 60 bars back (ROC60)
_W = np.array(WINDOWS, dtype=np.int64)
_WF = _W.astype(np.float64)
_NW = len(WINDOWS)

# Input series of the history ring, in this order.
SERIES = (
    "close",
    "high",
    "low",
    "logv",
    "fl",
    "fr",
    "up",
    "dn",
    "gain",
    "loss",
    "move",
    "vol",
    "wv",
    "vgain",
    "vloss",
    "vmove",
)
_S = len(SERIES)
_MOM = np.array([0, 3, 4, 5, 11, 12])  # Moments: close, logv, cord_l, cord_r, vol, wv
_SUM = np.array([6, 7, 8, 9, 10, 13, 14, 15])  # RollingSum: up, dn, gain, loss, move, v*
_PX = np.array([0, 4])  # PairMoments: corr (close, logv), cord (fl, fr)
_PY = np.array([3, 5])
_MOM_NAMES = ("close", "logv", "cord_l", "cord_r", "vol", "wv")
_SUM_NAMES = ("up", "dn", "gain", "loss", "move", "vgain", "vloss", "vmove")
_PAIR_NAMES = ("corr", "cord")


def _sum_rows(a: F64) -> F64:
    """Left-to-right sum of every row: :func:`~indicators.alpha158.windows.seqsum`'s bits
    (``accumulate`` is sequential, unlike numpy's pairwise ``sum``)."""
    return np.add.accumulate(a, axis=1)[:, -1]


def _log(x: F64) -> F64:
    """``math.log`` element-wise (``x > 0`` or ``inf`` here)."""
    return np.fromiter(map(math.log, x.tolist()), np.float64, len(x))


def _nonneg(x: F64) -> F64:
    """Python's ``max(x, 0.0)``: ``x`` unless ``x < 0`` (``NaN`` and ``-0.0`` pass)."""
    return np.where(x < 0.0, 0.0, x)


class Alpha158Batch:
    """Alpha158 state of ``n`` symbols (rows ``0..n-1``), updated a round at a time."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.t = np.zeros(n, dtype=np.int64)
        """Bars applied per row."""
        self.pc = np.full(n, NAN)
        self.pv = np.full(n, NAN)
        # Each ring stored twice over (``[p]`` and ``[p + _L]``), so every row's ring, oldest
        # first, is one contiguous slice of a sliding-window view: one cheap gather per round.
        self.hist = np.full((n, _S, 2 * _L), NAN)
        self._recent = np.empty((0, _S, _L))
        self.last_out = np.full((n, len(NAMES)), NAN)
        """Each row's latest 158 values (``NaN`` before its first bar)."""
        m = (n, len(_MOM), _NW)
        self.m_n, self.m_mean, self.m_m2 = np.zeros(m), np.zeros(m), np.zeros(m)
        self.m_last, self.m_run = np.full(m, NAN), np.zeros(m)
        s = (n, len(_SUM), _NW)
        self.s_n, self.s_total = np.zeros(s), np.zeros(s)
        self.s_last, self.s_run = np.full(s, NAN), np.zeros(s)
        p = (n, len(_PX), _NW)
        self.p_n = np.zeros(p)
        self.p_mx, self.p_my = np.zeros(p), np.zeros(p)
        self.p_m2x, self.p_m2y, self.p_cxy = np.zeros(p), np.zeros(p), np.zeros(p)
        r = (n, _NW)
        self.r_anchor = np.full(r, NAN)
        self.r_n = np.zeros(r)
        self.r_sx, self.r_sxx = np.zeros(r), np.zeros(r)
        self.r_sy, self.r_syy, self.r_sxy = np.zeros(r), np.zeros(r), np.zeros(r)

    def grown(self, n: int) -> Alpha158Batch:
        """A copy with room for ``n`` rows (the new rows fresh)."""
        bigger = Alpha158Batch(n)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and name != "_recent":
                getattr(bigger, name)[: self.n] = value
        return bigger

    # -- one round ---------------------------------------------------------------------
    def update(self, rows: I64, o: F64, h: F64, lo: F64, c: F64, v: F64, vwap: F64) -> F64:
        """Apply one bar to each of ``rows`` (distinct); return their 158 values ``[k, 158]``.

        Bars must be valid (finite, positive prices, ``volume >= 0``): callers validate.
        """
        with np.errstate(all="ignore"):
            return self._update(np.asarray(rows, dtype=np.int64), o, h, lo, c, v, vwap)

    def _update(self, rows: I64, o: F64, h: F64, lo: F64, c: F64, v: F64, vwap: F64) -> F64:
        k = len(rows)
        t = self.t[rows]
        pc, pv = self.pc[rows], self.pv[rows]
        out = np.empty((k, len(NAMES)))
        rng = h - lo + _GUARD
        hi_oc = np.where(c > o, c, o)  # Python's max(o, c)
        lo_oc = np.where(c < o, c, o)  # min(o, c)
        kbar = (
            (c - o) / o,
            (h - lo) / o,
            (c - o) / rng,
            (h - hi_oc) / o,
            (h - hi_oc) / rng,
            (lo_oc - lo) / o,
            (lo_oc - lo) / rng,
            (2 * c - h - lo) / o,
            (2 * c - h - lo) / rng,
            o / c,
            h / c,
            lo / c,
            vwap / c,
        )
        for i, col in enumerate(kbar):
            out[:, i] = col
        d = c - pc
        dv = v - pv
        r1 = c / pc
        lr = _log(v / pv + 1.0)
        x = np.empty((k, _S))
        x[:, 0], x[:, 1], x[:, 2] = c, h, lo
        x[:, 3] = _log(v + 1.0)
        x[:, 4] = np.where(np.abs(r1) == math.inf, NAN, r1)
        x[:, 5] = np.where(np.abs(lr) == math.inf, NAN, lr)
        x[:, 6] = np.where(c > pc, 1.0, 0.0)
        x[:, 7] = np.where(c < pc, 1.0, 0.0)
        x[:, 8] = _nonneg(d)
        x[:, 9] = _nonneg(pc - c)
        x[:, 10] = np.abs(d)
        x[:, 11] = v
        x[:, 12] = np.abs(r1 - 1.0) * v
        x[:, 13] = _nonneg(dv)
        x[:, 14] = _nonneg(pv - v)
        x[:, 15] = np.abs(dv)
        # Store x, then read every row's ring oldest first: ``recent[:, :, _L - 1 - w]`` is the
        # input leaving the window ``w`` (NaN before it is full), ``[..., _L - w:]`` the window.
        p = t % _L
        self.hist[rows, :, p] = x
        self.hist[rows, :, p + _L] = x
        rings = np.lib.stride_tricks.sliding_window_view(self.hist, _L, axis=2)
        self._recent = recent = rings[rows, :, p + 1]
        old = recent[:, :, _L - 1 - _W]
        due = ((t[:, None] + 1) % _W == 0)[:, None, :]  # [k, 1, w]: the periodic refresh

        std, mean = self._moments(rows, t, x[:, _MOM, None], old[:, _MOM, :], due)
        sums, cnt = self._sums(rows, t, x[:, _SUM, None], old[:, _SUM, :], due)
        corr = self._pairs(rows, t, x, old, due)
        slope, rsq, resi = self._regression(rows, t, c, old[:, 0, :], due[:, 0, :])
        maxh, imax = self._extremum(rows, t, 1, largest=True)
        minl, imin = self._extremum(rows, t, 2, largest=False)
        qtlu, qtld, rank = self._order(rows, t, c)

        cc = c[:, None]
        vv = v[:, None]
        std_c = std[:, 0]
        flat_c = std_c <= _FLAT_STD
        lag = old[:, 0, :]
        rows_n = cnt  # rows in each window (``up`` is never missing)
        cntp, cntn = sums[:, 0] / rows_n, sums[:, 1] / rows_n
        den = sums[:, 4] + _GUARD
        vden = sums[:, 7] + _GUARD
        sp, sn, vsp, vsn = sums[:, 2], sums[:, 3], sums[:, 5], sums[:, 6]
        roll = (
            lag / cc,
            mean[:, 0] / cc,
            std_c / cc,
            slope / cc,
            np.where(flat_c, NAN, rsq),
            resi / cc,
            maxh / cc,
            minl / cc,
            qtlu / cc,
            qtld / cc,
            rank,
            (cc - minl) / (maxh - minl + _GUARD),
            imax / _W,
            imin / _W,
            (imax - imin) / _W,
            np.where(flat_c | (std[:, 1] <= _FLAT_STD), NAN, corr[:, 0]),
            np.where((std[:, 2] <= _FLAT_STD) | (std[:, 3] <= _FLAT_STD), NAN, corr[:, 1]),
            cntp,
            cntn,
            cntp - cntn,
            sp / den,
            sn / den,
            (sp - sn) / den,
            mean[:, 4] / (vv + _GUARD),
            std[:, 4] / (vv + _GUARD),
            std[:, 5] / (mean[:, 5] + _GUARD),
            vsp / vden,
            vsn / vden,
            (vsp - vsn) / vden,
        )
        assert len(roll) == len(ROLLING)
        out[:, 13:] = np.stack(roll, axis=1).reshape(k, len(ROLLING) * _NW)
        self.pc[rows], self.pv[rows] = c, v
        self.t[rows] = t + 1
        self.last_out[rows] = out
        return out

    # -- operators -----------------------------------------------------------------------
    def _window(self, at: I64, series: I64, w: int) -> F64:
        """The last ``w`` inputs of ``series`` of the round's rows ``at``, oldest first."""
        return self._recent[at, series][:, _L - w :]

    def _moments(
        self, rows: I64, t: I64, x: F64, old: F64, due: npt.NDArray[np.bool_]
    ) -> tuple[F64, F64]:
        """:class:`~indicators.alpha158.windows.Moments`: ``std()`` and ``mean_value()``."""
        n, mean, m2 = self.m_n[rows], self.m_mean[rows], self.m_m2[rows]
        last, run = self.m_last[rows], self.m_run[rows]
        before = m2
        vo = old == old
        n1 = n - vo
        mean_r = mean - (old - mean) / n1
        m2_r = m2 - (old - mean_r) * (old - mean)
        gone = vo & (n1 == 0)
        mean = np.where(gone, 0.0, np.where(vo, mean_r, mean))
        m2 = np.where(gone, 0.0, np.where(vo, m2_r, m2))
        vx = np.broadcast_to(x == x, n1.shape)
        n = n1 + vx
        dd = x - mean
        mean_a = mean + dd / n
        m2_a = m2 + dd * (x - mean_a)
        mean = np.where(vx, mean_a, mean)
        m2 = np.where(vx, m2_a, m2)
        same = x == last
        run = np.where(vx, np.where(same, run + 1.0, 1.0), run)
        last = np.where(vx & ~same, x, last)
        redo = due | (m2 < before * _CANCEL)
        for j in range(_NW):
            ri, si = np.nonzero(redo[:, :, j])
            if len(ri):
                vals = self._window(ri, _MOM[si], int(_W[j]))
                ok = vals == vals
                cnt = ok.sum(axis=1).astype(np.float64)
                mu = np.where(cnt > 0, _sum_rows(np.where(ok, vals, 0.0)) / cnt, 0.0)
                dev = vals - mu[:, None]
                n[ri, si, j] = cnt
                mean[ri, si, j] = mu
                m2[ri, si, j] = _sum_rows(np.where(ok, dev * dev, 0.0))
        self.m_n[rows], self.m_mean[rows], self.m_m2[rows] = n, mean, m2
        self.m_last[rows], self.m_run[rows] = last, run
        flat = run >= n
        mean_value = np.where(n == 0, NAN, np.where(flat, last, mean))
        var = np.where(m2 < 0.0, 0.0, m2) / (n - 1.0)
        std = np.where(n < 2, NAN, np.where(flat, 0.0, np.sqrt(var)))
        return std, mean_value

    def _sums(
        self, rows: I64, t: I64, x: F64, old: F64, due: npt.NDArray[np.bool_]
    ) -> tuple[F64, F64]:
        """:class:`~indicators.alpha158.windows.RollingSum`: values and valid counts."""
        n, total = self.s_n[rows], self.s_total[rows]
        last, run = self.s_last[rows], self.s_run[rows]
        vo = old == old
        n = n - vo
        total = np.where(vo, total - old, total)
        vx = np.broadcast_to(x == x, n.shape)
        n = n + vx
        total = np.where(vx, total + x, total)
        same = x == last
        run = np.where(vx, np.where(same, run + 1.0, 1.0), run)
        last = np.where(vx & ~same, x, last)
        redo = np.broadcast_to(due, n.shape)
        for j in range(_NW):
            ri, si = np.nonzero(redo[:, :, j])
            if len(ri):
                vals = self._window(ri, _SUM[si], int(_W[j]))
                ok = vals == vals
                n[ri, si, j] = ok.sum(axis=1)
                total[ri, si, j] = _sum_rows(np.where(ok, vals, 0.0))
        self.s_n[rows], self.s_total[rows] = n, total
        self.s_last[rows], self.s_run[rows] = last, run
        value = np.where(n == 0, NAN, np.where(run >= n, last * n, total))
        return value, n[:, 0]

    def _pairs(self, rows: I64, t: I64, x: F64, old: F64, due: npt.NDArray[np.bool_]) -> F64:
        """:class:`~indicators.alpha158.windows.PairMoments`: ``corr()`` of both pairs."""
        n, mx, my = self.p_n[rows], self.p_mx[rows], self.p_my[rows]
        m2x, m2y, cxy = self.p_m2x[rows], self.p_m2y[rows], self.p_cxy[rows]
        bx, by = m2x, m2y
        ox, oy = old[:, _PX, :], old[:, _PY, :]
        xx, yy = x[:, _PX, None], x[:, _PY, None]
        # _remove
        vo = (ox == ox) & (oy == oy)
        n1 = n - vo
        mx_r = mx - (ox - mx) / n1
        my_r = my - (oy - my) / n1
        m2x_r = m2x - (ox - mx_r) * (ox - mx)
        m2y_r = m2y - (oy - my_r) * (oy - my)
        cxy_r = cxy - (ox - mx_r) * (oy - my)
        gone = vo & (n1 == 0)

        def pick(removed: F64, kept: F64) -> F64:
            return np.where(gone, 0.0, np.where(vo, removed, kept))

        mx, my, m2x, m2y, cxy = (
            pick(mx_r, mx),
            pick(my_r, my),
            pick(m2x_r, m2x),
            pick(m2y_r, m2y),
            pick(cxy_r, cxy),
        )
        # _add
        vx = np.broadcast_to((xx == xx) & (yy == yy), n1.shape)
        n = n1 + vx
        dx = xx - mx
        dy = yy - my
        mx_a = mx + dx / n
        my_a = my + dy / n
        m2x = np.where(vx, m2x + dx * (xx - mx_a), m2x)
        m2y = np.where(vx, m2y + dy * (yy - my_a), m2y)
        cxy = np.where(vx, cxy + dx * (yy - my_a), cxy)
        mx = np.where(vx, mx_a, mx)
        my = np.where(vx, my_a, my)
        redo = due | (m2x < bx * _CANCEL) | (m2y < by * _CANCEL)
        for j in range(_NW):
            ri, pi = np.nonzero(redo[:, :, j])
            if len(ri):
                w = int(_W[j])
                vx_ = self._window(ri, _PX[pi], w)
                vy_ = self._window(ri, _PY[pi], w)
                ok = (vx_ == vx_) & (vy_ == vy_)
                cnt = ok.sum(axis=1).astype(np.float64)
                some = cnt > 0
                ax = np.where(some, _sum_rows(np.where(ok, vx_, 0.0)) / cnt, 0.0)
                ay = np.where(some, _sum_rows(np.where(ok, vy_, 0.0)) / cnt, 0.0)
                ex = vx_ - ax[:, None]
                ey = vy_ - ay[:, None]
                n[ri, pi, j] = cnt
                mx[ri, pi, j], my[ri, pi, j] = ax, ay
                m2x[ri, pi, j] = _sum_rows(np.where(ok, ex * ex, 0.0))
                m2y[ri, pi, j] = _sum_rows(np.where(ok, ey * ey, 0.0))
                cxy[ri, pi, j] = _sum_rows(np.where(ok, ex * ey, 0.0))
        self.p_n[rows], self.p_mx[rows], self.p_my[rows] = n, mx, my
        self.p_m2x[rows], self.p_m2y[rows], self.p_cxy[rows] = m2x, m2y, cxy
        dxy = np.where(m2x < 0.0, 0.0, m2x) * np.where(m2y < 0.0, 0.0, m2y)
        return np.where((n < 2) | ~(dxy > 0.0), NAN, cxy / np.sqrt(dxy))

    def _regression(
        self, rows: I64, t: I64, c: F64, old: F64, due: npt.NDArray[np.bool_]
    ) -> tuple[F64, F64, F64]:
        """:class:`~indicators.alpha158.windows.Regression` of the close (never missing)."""
        anchor = self.r_anchor[rows]
        n, sx, sxx = self.r_n[rows], self.r_sx[rows], self.r_sxx[rows]
        sy, syy, sxy = self.r_sy[rows], self.r_syy[rows], self.r_sxy[rows]
        cc = c[:, None]
        anchor = np.where(anchor != anchor, cc, anchor)
        sxy = sxy - sy
        sxx = sxx + (n - 2.0 * sx)
        sx = sx - n
        vo = old == old
        y0 = old - anchor
        n = n - vo
        sy = np.where(vo, sy - y0, sy)
        syy = np.where(vo, syy - y0 * y0, syy)
        y = cc - anchor
        n = n + 1.0
        sx = sx + _WF
        sxx = sxx + _WF * _WF
        sy = sy + y
        syy = syy + y * y
        sxy = sxy + _WF * y
        for j in range(_NW):
            ri = np.nonzero(due[:, j])[0]
            if len(ri):
                w = int(_W[j])
                vals = self._recent[ri, 0, _L - w :]
                ok = vals == vals
                pos = np.broadcast_to(np.arange(1.0, w + 1.0), vals.shape)
                last_ok = w - 1 - np.argmax(ok[:, ::-1], axis=1)
                anc = vals[np.arange(len(ri)), last_ok]
                ys = vals - anc[:, None]
                n[ri, j] = ok.sum(axis=1)
                anchor[ri, j] = anc
                sx[ri, j] = _sum_rows(np.where(ok, pos, 0.0))
                sxx[ri, j] = _sum_rows(np.where(ok, pos * pos, 0.0))
                sy[ri, j] = _sum_rows(np.where(ok, ys, 0.0))
                syy[ri, j] = _sum_rows(np.where(ok, ys * ys, 0.0))
                sxy[ri, j] = _sum_rows(np.where(ok, pos * ys, 0.0))
        self.r_anchor[rows], self.r_n[rows] = anchor, n
        self.r_sx[rows], self.r_sxx[rows] = sx, sxx
        self.r_sy[rows], self.r_syy[rows], self.r_sxy[rows] = sy, syy, sxy
        num = n * sxy - sx * sy
        den = n * sxx - sx * sx
        pos_den = den > 0.0
        slope = np.where(pos_den, num / den, NAN)
        vy = n * syy - sy * sy
        rsq = np.where(pos_den & (vy > 0.0), num * num / (den * vy), NAN)
        y_last = cc - anchor
        resi = np.where(pos_den, y_last - (sy / n + slope * (_WF - sx / n)), NAN)
        return slope, rsq, resi

    def _extremum(self, rows: I64, t: I64, series: int, *, largest: bool) -> tuple[F64, F64]:
        """:class:`~indicators.alpha158.windows.Extremum`: value and 1-based position."""
        k = len(rows)
        value, where = np.empty((k, _NW)), np.empty((k, _NW))
        at = np.arange(k)
        for j, w in enumerate(WINDOWS):
            vals = self._recent[:, series, _L - w :]
            if largest:
                i = np.argmax(np.where(vals == vals, vals, -math.inf), axis=1)
            else:
                i = np.argmin(np.where(vals == vals, vals, math.inf), axis=1)
            value[:, j] = vals[at, i]
            pads = np.maximum(0, w - 1 - t)
            where[:, j] = i - pads + 1
        return value, where

    def _order(self, rows: I64, t: I64, c: F64) -> tuple[F64, F64, F64]:
        """:class:`~indicators.alpha158.windows.OrderStats` of the close: quantiles, rank."""
        k = len(rows)
        qu, qd, rank = np.empty((k, _NW)), np.empty((k, _NW)), np.empty((k, _NW))
        at = np.arange(k)
        cc = c[:, None]
        for j, w in enumerate(WINDOWS):
            vals = self._recent[:, 0, _L - w :]
            srt = np.sort(vals, axis=1)  # NaN (before start) sorts last
            n = (vals == vals).sum(axis=1)
            for q, dest in ((0.8, qu), (0.2, qd)):
                idx = q * (n - 1)
                i = idx.astype(np.int64)
                lo = srt[at, i]
                hi = srt[at, np.minimum(i + 1, w - 1)]
                dest[:, j] = np.where(i == idx, lo, lo + (hi - lo) * (idx - i))
            below = (vals < cc).sum(axis=1)
            upto = (vals <= cc).sum(axis=1)
            rank[:, j] = (below + upto + 1) / 2 / n
        return qu, qd, rank


# -- per-symbol values: what snapshots store ---------------------------------------------------
def _ring(hist: F64, s: int, p: int, w: int) -> list[float]:
    """The ring buffer of a window ``w`` after ``p`` pushes of series ``s`` (``_Ring.buf``)."""
    buf = [NAN] * w
    for q in range(max(0, p - w), p):
        buf[q % w] = float(hist[s, q % _L])
    return buf


def _set_ring(ring: _Ring, buf: list[float], p: int) -> None:
    ring.buf = list(buf)  # rings are updated in place: never share one
    ring.pos = ring.since = p % ring.w


def _deque(vals: list[float], p: int, w: int, *, largest: bool) -> deque[tuple[int, float]]:
    """The monotonic deque of :class:`Extremum` after ``p`` pushes (``vals``: the window)."""
    ext = Extremum(w, largest=largest)
    ext.t = max(0, p - w) - 1
    for x in vals:
        ext.push(x)
    return ext.dq


def to_state(batch: Alpha158Batch, row: int) -> Alpha158:
    """Row ``row`` of ``batch`` as a per-symbol :class:`Alpha158` (same future values)."""
    a = Alpha158()
    p = int(batch.t[row])
    hist = batch.hist[row]
    a._t = p
    a._n = min(p, a.warmup)
    a.pc, a.pv = float(batch.pc[row]), float(batch.pv[row])
    a._lag = hist[0, :_L].tolist()
    if p:
        a.out = tuple(batch.last_out[row].tolist())
    last_c = float(hist[0, (p - 1) % _L]) if p else NAN
    for j, win in enumerate(a._wins):
        w = win.w
        rings = {s: _ring(hist, s, p, w) for s in range(_S)}
        for m, name in enumerate(_MOM_NAMES):
            mo = getattr(win, name)
            _set_ring(mo, rings[int(_MOM[m])], p)
            mo.n = int(batch.m_n[row, m, j])
            mo.mean, mo.m2 = float(batch.m_mean[row, m, j]), float(batch.m_m2[row, m, j])
            mo.last, mo.run = float(batch.m_last[row, m, j]), int(batch.m_run[row, m, j])
        for m, name in enumerate(_SUM_NAMES):
            rs = getattr(win, name)
            _set_ring(rs, rings[int(_SUM[m])], p)
            rs.n, rs.total = int(batch.s_n[row, m, j]), float(batch.s_total[row, m, j])
            rs.last, rs.run = float(batch.s_last[row, m, j]), int(batch.s_run[row, m, j])
        for m, name in enumerate(_PAIR_NAMES):
            pm = getattr(win, name)
            _set_ring(pm, rings[int(_PX[m])], p)
            pm.ybuf = list(rings[int(_PY[m])])
            pm.n = int(batch.p_n[row, m, j])
            pm.mx, pm.my = float(batch.p_mx[row, m, j]), float(batch.p_my[row, m, j])
            pm.m2x, pm.m2y = float(batch.p_m2x[row, m, j]), float(batch.p_m2y[row, m, j])
            pm.cxy = float(batch.p_cxy[row, m, j])
        reg = win.reg
        _set_ring(reg, rings[0], p)
        reg.anchor, reg.n = float(batch.r_anchor[row, j]), int(batch.r_n[row, j])
        reg.sx, reg.sxx = float(batch.r_sx[row, j]), float(batch.r_sxx[row, j])
        reg.sy, reg.syy = float(batch.r_sy[row, j]), float(batch.r_syy[row, j])
        reg.sxy, reg.y_last = float(batch.r_sxy[row, j]), last_c
        _set_ring(win.order, rings[0], p)
        win.order.sorted = SortedList(v for v in rings[0] if v == v)
        win.order.x_last = last_c
        for ext, s in ((win.high, 1), (win.low, 2)):
            vals = [float(hist[s, q % _L]) for q in range(max(0, p - w), p)]
            ext.dq = _deque(vals, p, w, largest=ext.largest)
            ext.t = p - 1
    return a


def load_state(batch: Alpha158Batch, row: int, a: Alpha158) -> None:
    """Put the per-symbol :class:`Alpha158` ``a`` into row ``row`` of ``batch``."""
    p = a._t
    hist = np.full((_S, _L), NAN)
    hist[0] = a._lag
    win60: _Window = a._wins[-1]
    rings: dict[int, list[float]] = {}
    for m, name in enumerate(_MOM_NAMES):
        rings[int(_MOM[m])] = getattr(win60, name).buf
    for m, name in enumerate(_SUM_NAMES):
        rings[int(_SUM[m])] = getattr(win60, name).buf
    w60 = win60.w
    for s, buf in rings.items():
        for q in range(max(0, p - w60), p):
            hist[s, q % _L] = buf[q % w60]
    # Max/min need only the window's undominated inputs (the deque); the others can never be
    # an extreme again, so they are stored as -inf (max) / +inf (min).
    for ext, s, fill in ((win60.high, 1, -math.inf), (win60.low, 2, math.inf)):
        for q in range(max(0, p - w60), p):
            hist[s, q % _L] = fill
        for q, x in ext.dq:
            hist[s, q % _L] = x
    batch.hist[row, :, :_L] = hist
    batch.hist[row, :, _L:] = hist
    batch.t[row] = p
    batch.pc[row], batch.pv[row] = a.pc, a.pv
    batch.last_out[row] = a.out if p else NAN
    for j, win in enumerate(a._wins):
        for m, name in enumerate(_MOM_NAMES):
            mo = getattr(win, name)
            batch.m_n[row, m, j], batch.m_mean[row, m, j], batch.m_m2[row, m, j] = (
                mo.n,
                mo.mean,
                mo.m2,
            )
            batch.m_last[row, m, j], batch.m_run[row, m, j] = mo.last, mo.run
        for m, name in enumerate(_SUM_NAMES):
            rs = getattr(win, name)
            batch.s_n[row, m, j], batch.s_total[row, m, j] = rs.n, rs.total
            batch.s_last[row, m, j], batch.s_run[row, m, j] = rs.last, rs.run
        for m, name in enumerate(_PAIR_NAMES):
            pm = getattr(win, name)
            batch.p_n[row, m, j], batch.p_mx[row, m, j], batch.p_my[row, m, j] = (
                pm.n,
                pm.mx,
                pm.my,
            )
            batch.p_m2x[row, m, j], batch.p_m2y[row, m, j] = pm.m2x, pm.m2y
            batch.p_cxy[row, m, j] = pm.cxy
        reg = win.reg
        batch.r_anchor[row, j], batch.r_n[row, j] = reg.anchor, reg.n
        batch.r_sx[row, j], batch.r_sxx[row, j] = reg.sx, reg.sxx
        batch.r_sy[row, j], batch.r_syy[row, j], batch.r_sxy[row, j] = reg.sy, reg.syy, reg.sxy


#: The per-row state arrays, in the order of a row's payload (``t`` travels as a float).
_ROW_FIELDS = (
    "t", "pc", "pv", "m_n", "m_mean", "m_m2", "m_last", "m_run", "s_n", "s_total", "s_last",
    "s_run", "p_n", "p_mx", "p_my", "p_m2x", "p_m2y", "p_cxy", "r_anchor", "r_n", "r_sx",
    "r_sxx", "r_sy", "r_syy", "r_sxy", "last_out",
)  # fmt: skip


def row_payload(batch: Alpha158Batch, row: int) -> bytes:
    """Row ``row``'s whole state as float64 bytes (~12 kB): a snapshot's compact form."""
    parts = [np.ravel(getattr(batch, name)[row]).astype(np.float64) for name in _ROW_FIELDS]
    parts.append(np.ravel(batch.hist[row, :, :_L]))
    return np.concatenate(parts).tobytes()


def put_row_payload(batch: Alpha158Batch, row: int, payload: bytes) -> None:
    """Inverse of :func:`row_payload`: the state in ``payload`` becomes row ``row``."""
    flat = np.frombuffer(payload, dtype=np.float64)
    at = 0
    for name in _ROW_FIELDS:
        dest = getattr(batch, name)
        size = int(np.prod(dest.shape[1:], dtype=np.int64))
        dest[row] = flat[at : at + size].reshape(dest.shape[1:])
        at += size
    hist = flat[at:].reshape(_S, _L)
    if hist.size != _S * _L:
        raise ValueError(f"bad Alpha158 row payload of {len(payload)} bytes")
    batch.hist[row, :, :_L] = hist
    batch.hist[row, :, _L:] = hist
