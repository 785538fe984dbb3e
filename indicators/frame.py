"""Point-in-time training features: the streaming indicator code run over a DataFrame."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from indicators.alpha158.state import Alpha158, empty_history
from indicators.alpha158.vector import advance
from indicators.bar import BAR_COLUMNS, QUOTE_COLUMNS, Bar
from indicators.errors import FrameError, InvalidBarError
from indicators.feature_set import FeatureSet, SymbolState


def _column(df: pd.DataFrame, name: str) -> list[float | None]:
    """A float column as a Python list with ``None`` for missing values."""
    values = df[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return [None if v != v else v for v in values.tolist()]


def compute_frame(
    df: pd.DataFrame,
    feature_set: FeatureSet | None = None,
    *,
    on_invalid: Literal["raise", "skip"] = "raise",
) -> pd.DataFrame:
    """Features of every bar of ``df``, each computed only from its symbol's earlier bars.

    ``df`` has columns ``ts_ms, symbol, open, high, low, close, volume`` and optionally
    ``bid, ask, bid_size, ask_size``, in any row order. Per symbol, bars are applied in
    ``ts_ms`` order to one :class:`~indicators.feature_set.SymbolState` (the code the stream
    runs), so row *t* only sees bars with ``ts <= t``. An Alpha158 block is computed across
    all symbols at once by :func:`~indicators.alpha158.vector.advance` (the function the
    per-symbol indicator and the stream run: their values, bit for bit) on the bars the
    state accepted. The result has the same index as ``df``, columns ``ts_ms``, ``symbol``
    then ``feature_set.names`` (float64, ``NaN`` for warm-up), and
    ``attrs["feature_set_version"]``.

    A bar the state refuses (non-finite or non-positive price, duplicate ``ts_ms``...) raises
    :class:`~indicators.errors.FrameError` naming the row, or with ``on_invalid="skip"``
    gets an all-``NaN`` row and does not enter the state.
    """
    fs = feature_set if feature_set is not None else FeatureSet.default()
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise FrameError(f"missing columns {missing}; need {list(BAR_COLUMNS)}")
    n_rows = len(df)
    width = len(fs.names)
    out = np.full((n_rows, width), np.nan)
    if n_rows:
        try:
            ts = df["ts_ms"].to_numpy(dtype=np.int64).tolist()
            cols = [df[c].to_numpy(dtype=np.float64).tolist() for c in BAR_COLUMNS[2:]]
        except (TypeError, ValueError) as exc:
            raise FrameError(f"non-numeric bar column: {exc}") from exc
        none: list[float | None] = [None] * n_rows
        quotes = [_column(df, c) if c in df.columns else none for c in QUOTE_COLUMNS]
        codes = pd.factorize(df["symbol"])[0]
        order = np.lexsort((df["ts_ms"].to_numpy(), codes)).tolist()
        span = _alpha158_span(fs)
        rest = [sp for sp in fs.specs if sp.kind != "alpha158"]
        if rest:
            other = FeatureSet(rest) if span else fs
            new_state = other.new_state
        else:  # the bar checks of a state without indicators: same refusals, no columns
            new_state = partial(SymbolState, (), fs.version)
        symbols = df["symbol"].tolist()
        keep = np.ones(width, dtype=bool)
        if span:
            keep[span[0] : span[1]] = False
        rows, accepted = _run(
            new_state, int(keep.sum()), order, symbols, ts, cols, quotes, on_invalid
        )
        if span:
            applied = np.asarray(order)[np.asarray(accepted, dtype=bool)]
            _alpha158(out[:, span[0] : span[1]], applied, codes, cols)
        if rest:
            out[np.ix_(order, np.flatnonzero(keep))] = np.asarray(rows, dtype=np.float64)
    result = pd.DataFrame(out, index=df.index, columns=list(fs.names))
    result.insert(0, "symbol", df["symbol"].to_numpy())
    result.insert(0, "ts_ms", df["ts_ms"].to_numpy())
    result.attrs["feature_set_version"] = fs.version
    return result


def _alpha158_span(fs: FeatureSet) -> tuple[int, int] | None:
    """The columns ``[start, stop)`` of ``fs``'s Alpha158 block (``None``: it has none)."""
    start = 0
    for ind in fs.new_state().indicators:
        if isinstance(ind, Alpha158):
            return start, start + ind.n_outputs
        start += ind.n_outputs
    return None


def _alpha158(
    dest: npt.NDArray[np.float64],
    accepted: npt.NDArray[np.intp],
    codes: npt.NDArray[np.intp],
    cols: list[list[float]],
) -> None:
    """Alpha158 of the ``accepted`` rows (symbol by symbol, time-ordered) into ``dest``:
    one :func:`~indicators.alpha158.vector.advance` of every symbol from an empty history."""
    if not len(accepted):
        return
    sym = codes[accepted].astype(np.int64)
    bars = np.empty((len(accepted), 6))
    for j, col in enumerate(cols):
        bars[:, j] = np.asarray(col, dtype=np.float64)[accepted]
    bars[:, 5] = (bars[:, 1] + bars[:, 2] + bars[:, 3]) / 3.0  # bar_vwap
    hist = np.repeat(empty_history()[None], int(codes.max()) + 1, axis=0)
    dest[accepted] = advance(hist, sym, bars)[0]


def _run(
    new_state: Callable[[], SymbolState],
    width: int,
    order: list[int],
    symbols: list[object],
    ts: list[int],
    cols: list[list[float]],
    quotes: list[list[float | None]],
    on_invalid: str,
) -> tuple[list[list[float]], list[bool]]:
    """Feature rows in ``order`` (symbol by symbol, time-ordered within a symbol), and
    whether each bar entered its symbol's state."""
    o, h, lo, c, v = cols
    bid, ask, bsz, asz = quotes
    state = new_state()
    nan_row = [np.nan] * width
    rows: list[list[float]] = []
    accepted: list[bool] = []
    append = rows.append
    current: object = object()
    for p in order:
        sym = symbols[p]
        if sym != current:
            current = sym
            state = new_state()
        bar = Bar(ts[p], o[p], h[p], lo[p], c[p], v[p], bid[p], ask[p], bsz[p], asz[p])
        try:
            append(state.update(bar))
            accepted.append(True)
        except InvalidBarError as exc:
            if on_invalid == "raise":
                raise FrameError(f"row {p} (symbol {sym!r}, ts_ms {ts[p]}): {exc}") from exc
            append(nan_row)
            accepted.append(False)
    return rows, accepted
