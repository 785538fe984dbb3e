"""tickcast: incremental technical indicators and the feature set.

One implementation of every indicator, used live (per-symbol :class:`SymbolState` in the
stream), in replay and in training-set construction (:func:`compute_frame`).

    fs = FeatureSet.default()             # names, version (12 hex chars), warm-up length
    state = fs.new_state()                # one per symbol; pickles to ~7 kB, constant
    vector = state.update(Bar(ts_ms, o, h, l, c, v))   # list[float], NaN during warm-up
    frame = compute_frame(bars_df, fs)    # point-in-time features of a bar DataFrame
"""

from indicators.bar import Bar, check_bar
from indicators.base import CloseIndicator, Indicator
from indicators.errors import FeatureSetError, FrameError, IndicatorError, InvalidBarError
from indicators.feature_set import (
    DEFAULT_SPECS,
    IMPL_REVISION,
    REGISTRY,
    FeatureSet,
    IndicatorSpec,
    SymbolState,
    spec,
)
from indicators.frame import compute_frame

__all__ = [
    "DEFAULT_SPECS",
    "IMPL_REVISION",
    "REGISTRY",
    "Bar",
    "CloseIndicator",
    "FeatureSet",
    "FeatureSetError",
    "FrameError",
    "Indicator",
    "IndicatorError",
    "IndicatorSpec",
    "InvalidBarError",
    "SymbolState",
    "check_bar",
    "compute_frame",
    "spec",
]
