"""Point-in-time training features: the streaming indicator code run over a DataFrame."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from indicators.bar import BAR_COLUMNS, QUOTE_COLUMNS, Bar
from indicators.errors import FrameError, InvalidBarError
from indicators.feature_set import FeatureSet


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
    runs), so row *t* only sees bars with ``ts <= t``. The result has the same index as
    ``df``, columns ``ts_ms``, ``symbol`` then ``feature_set.names`` (float64, ``NaN`` for
    warm-up), and ``attrs["feature_set_version"]``.

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
        order = np.lexsort((df["ts_ms"].to_numpy(), pd.factorize(df["symbol"])[0])).tolist()
        rows = _run(fs, order, df["symbol"].tolist(), ts, cols, quotes, on_invalid)
        out[order] = np.asarray(rows, dtype=np.float64).reshape(n_rows, width)
    result = pd.DataFrame(out, index=df.index, columns=list(fs.names))
    result.insert(0, "symbol", df["symbol"].to_numpy())
    result.insert(0, "ts_ms", df["ts_ms"].to_numpy())
    result.attrs["feature_set_version"] = fs.version
    return result


def _run(
    fs: FeatureSet,
    order: list[int],
    symbols: list[object],
    ts: list[int],
    cols: list[list[float]],
    quotes: list[list[float | None]],
    on_invalid: str,
) -> list[list[float]]:
    """Feature rows in ``order`` (symbol by symbol, time-ordered within a symbol)."""
    o, h, lo, c, v = cols
    bid, ask, bsz, asz = quotes
    nan_row = [np.nan] * len(fs.names)
    rows: list[list[float]] = []
    append = rows.append
    current: object = object()
    state = fs.new_state()
    for p in order:
        sym = symbols[p]
        if sym != current:
            current = sym
            state = fs.new_state()
        bar = Bar(ts[p], o[p], h[p], lo[p], c[p], v[p], bid[p], ask[p], bsz[p], asz[p])
        try:
            append(state.update(bar))
        except InvalidBarError as exc:
            if on_invalid == "raise":
                raise FrameError(f"row {p} (symbol {sym!r}, ts_ms {ts[p]}): {exc}") from exc
            append(nan_row)
    return rows
