"""The side features over a bar frame, for training: the worker's code, run in event time.

Every side record is loaded into one :class:`~sidestreams.features.SideState` before the
first bar, then the bars are applied in ``(ts_ms, symbol)`` order. The as-of tables answer
each bar with what was *published* by its time, so this equals the live features whenever
the side records reached the worker before the ticks they concern (``docs/side_streams.md``
says what happens otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from schemas.records import MacroObservation, NewsItem
from sidestreams.features import SideSpec, SideState

__all__ = ["join_side", "side_computer", "side_frame"]


def side_frame(
    bars: pd.DataFrame,
    spec: SideSpec,
    macro: Iterable[MacroObservation] = (),
    news: Iterable[NewsItem] = (),
) -> pd.DataFrame:
    """Columns ``ts_ms, symbol`` and ``spec.names`` for every row of ``bars`` (same index).

    ``bars`` needs ``ts_ms, symbol, close``. Macro records of series the spec does not name
    are ignored; a news item counts for each of its symbols.
    """
    state = SideState(spec)
    for obs in macro:
        state.add_macro(obs)
    for item in news:
        for symbol in dict.fromkeys(item["symbols"]):
            state.add_news(item, symbol)
    ts = bars["ts_ms"].to_numpy(dtype=np.int64)
    symbols = bars["symbol"].astype(str).to_numpy()
    closes = bars["close"].to_numpy(dtype=np.float64)
    order = np.lexsort((symbols, ts))
    out = np.full((len(bars), len(spec.names)), np.nan)
    for i in order.tolist():
        out[i] = state.update(str(symbols[i]), int(ts[i]), float(closes[i]))
    result = pd.DataFrame(out, index=bars.index, columns=list(spec.names))
    result.insert(0, "symbol", bars["symbol"].to_numpy())
    result.insert(0, "ts_ms", ts)
    return result


def join_side(
    features: pd.DataFrame,
    bars: pd.DataFrame,
    spec: SideSpec,
    macro: Iterable[MacroObservation] = (),
    news: Iterable[NewsItem] = (),
) -> pd.DataFrame:
    """``features`` (a :func:`indicators.compute_frame` result) with the side columns added.

    ``features`` and ``bars`` share their index, as ``compute_frame`` leaves them.
    """
    side = side_frame(bars, spec, macro, news)
    clash = [c for c in spec.names if c in features.columns]
    if clash:
        raise ValueError(f"feature frame already has side columns {clash}")
    return pd.concat([features, side[list(spec.names)]], axis=1)


def side_computer(
    spec: SideSpec,
    macro: Sequence[MacroObservation] = (),
    news: Sequence[NewsItem] = (),
) -> Callable[[pd.DataFrame, Any], pd.DataFrame]:
    """``compute(bars, feature_set)`` for training: the indicators of ``feature_set``'s base
    (its ``specs``) and the side columns, joined by publication time."""
    from indicators.feature_set import FeatureSet
    from indicators.frame import compute_frame

    def compute(bars: pd.DataFrame, feature_set: Any) -> pd.DataFrame:
        base = FeatureSet(feature_set.specs) if feature_set is not None else None
        frame = join_side(compute_frame(bars, base), bars, spec, macro, news)
        if feature_set is not None:
            frame.attrs["feature_set_version"] = feature_set.version
        return frame

    return compute
