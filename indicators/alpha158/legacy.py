"""Snapshots of the incremental Alpha158 engine, migrated to the history state.

Until the history engine, a symbol's Alpha158 state was either a per-symbol indicator of
running operators (ring buffers, running sums, monotonic deques; pickled as the classes of
:mod:`indicators.alpha158.windows`) or a row of the struct-of-arrays engine (pickled as
``rows.standalone_row(payload)``). Both still hold every input of the last 60 bars that a
feature can need, so they migrate without a reset: the features that follow are those of
an uninterrupted history. The one gap: the operators' deques dropped highs (lows) that can
never be a window's max (min) again; they come back as ``-inf`` (``+inf``), which no
max/min or position can pick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_HISTORY = 60
_RING = 61  # the row engine's history ring: bar q at column q % 61
#: Series of the row engine's ring (its SERIES order) that the history keeps, by field:
#: high, low, close, volume, log(volume + 1), the finite log volume ratio.
_ROW_SERIES = (1, 2, 0, 11, 3, 5)
#: Sizes of the row engine's payload fields before its ring (t, pc, pv, moments, sums,
#: pairs, regression, last values), in float64s.
_N_OUT = 158
_ROW_HEAD = 3 + 5 * 6 * 5 + 4 * 8 * 5 + 6 * 2 * 5 + 7 * 5 + _N_OUT


def _ordered(ring: Any) -> list[float]:
    """A ring buffer's values, oldest first (``NaN`` before the series' start)."""
    buf: list[float] = ring.buf
    pos: int = ring.pos
    return buf[pos:] + buf[:pos]


def from_operators(slots: dict[str, Any]) -> tuple[F64, list[float], int]:
    """History, last values and update count of a pickled per-symbol operator state."""
    t: int = slots["_t"]
    win = slots["_wins"][-1]  # the 60-bar window's operators
    hist = np.full((6, _HISTORY), math.nan)
    hist[2] = _ordered(win.close)
    hist[3] = _ordered(win.vol)
    hist[4] = _ordered(win.logv)
    hist[5] = _ordered(win.cord_r)
    start = _HISTORY - min(t, _HISTORY)  # first column holding a bar
    for field, ext, fill in ((0, win.high, -math.inf), (1, win.low, math.inf)):
        hist[field, start:] = fill
        for q, x in ext.dq:
            hist[field, q - (t - _HISTORY)] = x
    out: Sequence[float] = slots.get("out", (math.nan,) * _N_OUT)
    return hist, list(out), int(slots.get("_n", 0))


def from_row_payload(payload: bytes) -> tuple[F64, list[float], int]:
    """History, last values and update count of a pickled row of the row engine."""
    flat = np.frombuffer(payload, dtype=np.float64)
    if flat.size != _ROW_HEAD + 16 * _RING:
        raise ValueError(f"bad Alpha158 row payload of {len(payload)} bytes")
    t = int(flat[0])
    out = flat[_ROW_HEAD - _N_OUT : _ROW_HEAD].tolist()
    ring = flat[_ROW_HEAD:].reshape(16, _RING)
    cols = [q % _RING for q in range(t - _HISTORY, t)]
    hist = np.full((6, _HISTORY), math.nan)
    hist[:, :] = ring[list(_ROW_SERIES)][:, cols]
    hist[:, : _HISTORY - min(t, _HISTORY)] = math.nan  # before the start (ring wraps)
    return hist, out, int(t > 0)
