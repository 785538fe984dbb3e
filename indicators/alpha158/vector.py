"""Alpha158 of many ticks at once, each from its window of the last 61 raw bars.

There is no running state beyond the raw bars: a tick's 158 values are a pure function of
its symbol's last 61 bars (the tick's own and 60 before it, ``NaN`` before the series
starts). :func:`features` takes those windows as matrices ``[field, tick, 61]`` and runs
every operator for all ticks with a fixed number of numpy calls per (operator, window):

* sums, means, standard deviations, correlations and the regression on row positions from
  window sums: one ``reduceat`` over the segments between window edges, then the segments
  added newest first, for all five window lengths at once; values are taken relative to an
  anchor inside the window (the newest valid value), so the one-pass moments lose at most
  ~2w ulps, and a flat window has a sum of squares of exactly 0 and a mean of exactly its
  value;
* max/min and their positions with ``argmax`` on the last ``w`` columns, quantiles with a
  row sort, rank with counts of lower and equal values.

Edge rules are Qlib's (``pandas.rolling(w, min_periods=1)``): columns before a series'
start are ``NaN`` and do not count; ``NaN`` inputs occupy a row and are skipped; see
:mod:`indicators.alpha158.state` for the list.

:func:`advance` is the driver for a micro-batch: it lays every symbol's retained history
(the last :data:`HISTORY` bars, :data:`FIELDS`) and the batch's ticks of that symbol end to
end in one buffer, gathers each tick's window with one fancy index, computes, and returns
the new histories. One tick of one symbol is the same call with a batch of one, so the
per-symbol indicator and the stream agree value for value by construction (every operation
here is element-wise or a sequential per-row reduction: a row's result never depends on the
other rows of the batch).

>>> hist = np.full((2, len(FIELDS), HISTORY), np.nan)
>>> bars = np.array([[10.0, 10.5, 9.5, 10.2, 1e3, 10.1], [20.0, 21.0, 19.0, 20.5, 5e3, 20.2]])
>>> out, new = advance(hist, np.array([0, 1]), bars)
>>> out.shape, new.shape, float(out[0, NAMES.index("MA5")]), float(out[1, NAMES.index("RANK60")])
((2, 158), (2, 6, 60), 1.0, 1.0)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from indicators.alpha158.definitions import NAMES, ROLLING, WINDOWS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

NAN = math.nan
_GUARD = 1e-12
_FLAT_STD = 2e-05  # Qlib: np.isclose(rolling std, 0, atol=2e-05) -> NaN for Rsquare and Corr

#: Bars of history a symbol keeps: the longest window (the 61st, for ``Ref($close, 60)``
#: and the first change inside the window, is the tick's predecessor chain's oldest bar).
HISTORY = max(WINDOWS)
#: Per-bar fields of the history: raw fields, then ``log(volume + 1)`` and
#: ``log(volume / previous volume + 1)`` (``NaN`` where undefined or infinite), computed
#: once per bar with :func:`math.log`.
FIELDS = ("high", "low", "close", "volume", "logv", "lvr")
_H, _LO, _C, _V, _LV, _LR = range(len(FIELDS))
_NW = len(WINDOWS)
_W = np.array(WINDOWS, dtype=np.int64)
_WF = _W.astype(np.float64)
_EDGES = (HISTORY - _W)[::-1].copy()  # first column of each window, the longest first
_Q = np.arange(1.0 - HISTORY, 1.0)  # row positions, the newest at 0 (shift-invariant fits)
_LATE = [3, 6, 7]  # moment series whose newest value may be missing
_ROWS, _OWN = [0, 1, 4], [2, 3, 5, 6, 7]  # series valid on every bar / counted on their own
_PX, _PY = [0, 6], [1, 7]  # the pairs: close & log volume, CORD's two inputs jointly
#: Ticks per gathered block: its temporaries stay in the CPU caches (measured best).
CHUNK = 256


def _rsum(x: npt.NDArray[np.generic]) -> F64:
    """Sums over the last ``w`` columns for every window ``w`` (``[..., 5]``): one pass
    summing the segments between window edges, then the segments added newest first.
    Each row is reduced on its own, so its sums never depend on the other rows."""
    seg: F64 = np.add.reduceat(x, _EDGES, axis=-1, dtype=np.float64)
    acc = np.empty_like(seg)
    acc[..., 0] = seg[..., -1]
    for j in range(1, _NW):
        np.add(acc[..., j - 1], seg[..., -1 - j], out=acc[..., j])
    return acc


def _logs(x: F64) -> F64:
    """:func:`math.log` element-wise (``x >= 1``, ``inf`` or ``NaN`` here)."""
    return np.fromiter(map(math.log, x.tolist()), np.float64, len(x))


def features(win: F64, o: F64, vwap: F64) -> F64:
    """The 158 values ``[n, 158]`` of ``n`` ticks from their windows ``win``
    ``[len(FIELDS), n, HISTORY + 1]`` (oldest first, the tick last) and the ticks' open and
    ``$vwap``. Bars must be valid (finite positive prices, ``volume >= 0``)."""
    with np.errstate(all="ignore"):
        return _features(win, o, vwap)


def _features(win: F64, o: F64, vwap: F64) -> F64:
    n = win.shape[1]
    close = win[_C]
    cw, cp = close[:, 1:], close[:, :-1]  # the 60-window and each row's previous close
    c, h, lo, v = close[:, -1], win[_H, :, -1], win[_LO, :, -1], win[_V, :, -1]
    vw, vp = win[_V, :, 1:], win[_V, :, :-1]
    exist = cw == cw
    prev = cp == cp  # the row has a previous bar: changes are defined
    # Bars (and bars with a predecessor) fill the window from the newest back: counts.
    n_rows = np.minimum(_WF, exist.sum(axis=1, dtype=np.float64)[:, None])
    n_prev = np.minimum(_WF, prev.sum(axis=1, dtype=np.float64)[:, None])

    out = np.empty((n, len(NAMES)))
    rng = h - lo + _GUARD
    hi_oc, lo_oc = np.maximum(o, c), np.minimum(o, c)
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
    out[:, : len(kbar)] = np.stack(kbar, axis=1)

    # -- window sums: counts of ups and downs, gains, losses and moves -----------------
    d = np.where(prev, cw - cp, 0.0)
    dv = np.where(prev, vw - vp, 0.0)
    s = np.empty((6, n, HISTORY))
    s[0], s[1] = cw > cp, cw < cp
    np.maximum(d, 0.0, out=s[2])
    np.abs(d, out=s[3])
    np.maximum(dv, 0.0, out=s[4])
    np.abs(dv, out=s[5])
    sums = _rsum(s)
    sums[2:] = np.where(n_prev > 0, sums[2:], NAN)
    cntp, cntn = sums[0] / n_rows, sums[1] / n_rows
    # a loss is a move that is not a gain: exactly 0 where every move is a gain
    sp, sn, den = sums[2], sums[3] - sums[2], sums[3] + _GUARD
    vsp, vsn, vden = sums[4], sums[5] - sums[4], sums[5] + _GUARD

    # -- moments: close, log volume, the CORD pair alone and jointly, volume, WVMA's input --
    r1 = cw / cp
    r1 = np.where(np.abs(r1) == math.inf, NAN, r1)  # pandas: ±inf is NaN before rolling
    lvr = win[_LR, :, 1:]
    x = np.empty((8, n, HISTORY))
    x[0], x[1], x[2], x[3] = cw, win[_LV, :, 1:], r1, lvr
    x[4], x[5] = vw, np.abs(r1 - 1.0) * vw
    both = (r1 == r1) & (lvr == lvr)
    x[6] = np.where(both, r1, NAN)
    x[7] = np.where(both, lvr, NAN)
    ok = x == x
    # The anchor: the newest value (valid for all but the log volume ratio and the pair,
    # which skip a bar after a volume of 0): inside every window with a valid value.
    anchor = x[:, :, -1:].copy()
    late = HISTORY - 1 - np.argmax(ok[_LATE, :, ::-1], axis=2)
    anchor[_LATE] = np.take_along_axis(x[_LATE], late[:, :, None], axis=2)
    anchor = np.where(anchor == anchor, anchor, 0.0)
    xa = np.where(ok, x - anchor, 0.0)
    s1, s2 = _rsum(xa), _rsum(xa * xa)
    cnt = np.empty_like(s1)
    cnt[_ROWS] = n_rows  # close, log volume, volume: valid wherever a bar is
    cnt[_OWN] = _rsum(ok[_OWN])
    ss = s2 - s1 * s1 / cnt
    mean = anchor + s1 / cnt  # NaN for an empty window
    std = np.where(cnt >= 2, np.sqrt(np.maximum(ss, 0.0) / (cnt - 1.0)), NAN)
    sxy = _rsum(np.stack((xa[0] * xa[1], xa[6] * xa[7])))
    cxy = sxy - s1[_PX] * s1[_PY] / cnt[_PX]
    dxy = np.maximum(ss[_PX], 0.0) * np.maximum(ss[_PY], 0.0)
    corr = np.where((cnt[_PX] >= 2) & (dxy > 0.0), cxy / np.sqrt(dxy), NAN)
    std_c = std[0]
    flat_c = std_c <= _FLAT_STD

    # -- Slope / Rsquare / Resi of the close on row positions (shift-invariant) --------
    nc = cnt[0]
    sq = -nc * (nc - 1.0) / 2.0  # positions of the last nc rows, newest at 0
    sqq = (nc - 1.0) * nc * (2.0 * nc - 1.0) / 6.0
    num = nc * _rsum(xa[0] * _Q) - sq * s1[0]
    dsq = nc * sqq - sq * sq
    vy = nc * s2[0] - s1[0] * s1[0]
    fit = dsq > 0.0
    slope = np.where(fit, num / dsq, NAN)
    rsq = np.where(fit & (vy > 0.0), num * num / (dsq * vy), NAN)
    resi = np.where(fit, -(s1[0] / nc - slope * sq / nc), NAN)  # newest row: x = y - a = 0

    # -- Max / Min and their positions, quantiles and rank of the close -----------------
    highs = np.where(exist, win[_H, :, 1:], -math.inf)
    lows = np.where(exist, win[_LO, :, 1:], math.inf)
    maxh, minl = np.empty((n, _NW)), np.empty((n, _NW))
    imax, imin = np.empty((n, _NW)), np.empty((n, _NW))
    qu, qd = np.empty((n, _NW)), np.empty((n, _NW))
    at = np.arange(n)
    for j, w in enumerate(WINDOWS):
        pads = w - n_rows[:, j]  # columns of the window before the series' start
        part = highs[:, HISTORY - w :]
        i = part.argmax(axis=1)
        maxh[:, j], imax[:, j] = part[at, i], i - pads + 1
        part = lows[:, HISTORY - w :]
        i = part.argmin(axis=1)
        minl[:, j], imin[:, j] = part[at, i], i - pads + 1
        srt = np.sort(cw[:, HISTORY - w :], axis=1)  # NaN (before the start) sorts last
        rows = n_rows[:, j]
        for q, dest in ((0.8, qu), (0.2, qd)):
            idx = q * (rows - 1.0)
            k = idx.astype(np.int64)
            low = srt[at, k]
            high = srt[at, np.minimum(k + 1, w - 1)]
            dest[:, j] = np.where(k == idx, low, low + (high - low) * (idx - k))
    cc = c[:, None]
    rank = (_rsum(cw < cc) + _rsum(cw <= cc) + 1.0) / 2.0 / n_rows

    vv = v[:, None] + _GUARD
    roll = (
        close[:, HISTORY - _W] / cc,
        mean[0] / cc,
        std_c / cc,
        slope / cc,
        np.where(flat_c, NAN, rsq),
        resi / cc,
        maxh / cc,
        minl / cc,
        qu / cc,
        qd / cc,
        rank,
        (cc - minl) / (maxh - minl + _GUARD),
        imax / _WF,
        imin / _WF,
        (imax - imin) / _WF,
        np.where(flat_c | (std[1] <= _FLAT_STD), NAN, corr[0]),
        np.where((std[2] <= _FLAT_STD) | (std[3] <= _FLAT_STD), NAN, corr[1]),
        cntp,
        cntn,
        cntp - cntn,
        sp / den,
        sn / den,
        (sp - sn) / den,
        mean[4] / vv,
        std[4] / vv,
        std[5] / (mean[5] + _GUARD),
        vsp / vden,
        vsn / vden,
        (vsp - vsn) / vden,
    )
    assert len(roll) == len(ROLLING)
    out[:, len(kbar) :] = np.stack(roll, axis=1).reshape(n, len(ROLLING) * _NW)
    return out


def advance(hist: F64, group: I64, bars: F64) -> tuple[F64, F64]:
    """Apply a micro-batch of bars to the histories of its symbols.

    ``hist`` ``[g, len(FIELDS), HISTORY]``: each symbol's last bars, oldest first (``NaN``
    before its start); ``group`` ``[n]``: the symbol (index into ``hist``) of each bar, a
    symbol's bars in time order; ``bars`` ``[n, 6]``: open, high, low, close, volume and
    ``$vwap``. Returns the bars' 158 values ``[n, 158]`` in input order and the new
    histories (a fresh array). Bars must be valid: callers validate.
    """
    n_groups, n = hist.shape[0], len(group)
    order = np.argsort(group, kind="stable")
    g = group[order]
    counts = np.bincount(group, minlength=n_groups)
    ends = np.cumsum(HISTORY + counts)
    starts = ends - (HISTORY + counts)
    buf = np.empty((len(FIELDS), int(ends[-1]) if n_groups else 0))
    buf[:, (starts[:, None] + np.arange(HISTORY)).ravel()] = hist.transpose(1, 0, 2).reshape(
        len(FIELDS), -1
    )
    first = np.cumsum(counts) - counts
    pos = starts[g] + HISTORY + (np.arange(n) - first[g])
    b = bars[order]
    v = b[:, 4]
    buf[_H, pos], buf[_LO, pos], buf[_C, pos], buf[_V, pos] = b[:, 1], b[:, 2], b[:, 3], v
    with np.errstate(all="ignore"):
        lvr = _logs(v / buf[_V, pos - 1] + 1.0)  # a first bar: NaN; after a volume of 0: inf
    buf[_LR, pos] = np.where(np.abs(lvr) == math.inf, NAN, lvr)
    buf[_LV, pos] = _logs(v + 1.0)
    out = np.empty((n, len(NAMES)))
    span = np.arange(-HISTORY, 1)
    for lo in range(0, n, CHUNK):
        rows = slice(lo, lo + CHUNK)
        win = buf[:, pos[rows, None] + span]
        out[order[rows]] = features(win, b[rows, 0], b[rows, 5])
    new = buf[:, ends[:, None] + np.arange(-HISTORY, 0)].transpose(1, 0, 2)
    return out, np.ascontiguousarray(new)
