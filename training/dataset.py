"""Build the point-in-time training table: features at t joined with labels known at t+h."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from training.errors import TrainingError
from training.labels import PREV_RETURN, make_labels, previous_return
from training.point_in_time import KEYS, keyed

FeatureComputer = Callable[[pd.DataFrame, Any], pd.DataFrame]


@dataclass(frozen=True)
class Dataset:
    """Rows sorted by ``(ts_ms, symbol)`` with a fresh index.

    Columns: ``symbol, ts_ms, label_end_ts, fwd_return, label, direction, ret_next``,
    ``_prev_ret_1`` (for the naive baseline) and the feature columns.
    """

    frame: pd.DataFrame
    feature_names: list[str]
    feature_set_version: str = ""

    @property
    def X(self) -> pd.DataFrame:
        """The feature columns."""
        return self.frame[self.feature_names]

    @property
    def y(self) -> np.ndarray:
        """0/1 labels (1 = the forward return is positive)."""
        return self.frame["label"].to_numpy()


def default_computer() -> FeatureComputer:
    """``indicators.compute_frame``, imported on first use."""
    import importlib

    module = importlib.import_module("indicators")
    compute = getattr(module, "compute_frame", None)
    if compute is None:  # the indicator library is not there yet
        raise TrainingError("no_feature_computer", "indicators.compute_frame is unavailable")
    return cast(FeatureComputer, compute)


def feature_names_of(feature_set: Any, frame: pd.DataFrame) -> list[str]:
    """The feature set's ``names`` if it has them, else every non-key column of ``frame``."""
    names = getattr(feature_set, "names", None)
    if names is not None:
        return [str(n) for n in names]
    return [c for c in frame.columns if c not in KEYS]


def build_dataset(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    feature_names: Sequence[str],
    horizon: int,
    *,
    drop_incomplete: bool = True,
    version: str = "",
) -> Dataset:
    """Join features to labels on ``(symbol, ts_ms)``.

    Rows without a label (the last ``horizon`` bars per symbol) are dropped; with
    ``drop_incomplete`` so are rows with a missing feature (indicator warm-up).
    """
    feats = keyed(features)
    names = list(feature_names)
    missing = [c for c in names if c not in feats.columns]
    if missing:
        raise TrainingError("missing_features", f"feature frame lacks {missing}")
    if feats.duplicated(KEYS).any():
        raise TrainingError("duplicate_features", "feature frame has duplicate (symbol, ts_ms)")
    labels = make_labels(bars, horizon)
    frame = labels.merge(previous_return(bars), on=KEYS, how="left")
    frame = frame.merge(feats[[*KEYS, *names]], on=KEYS, how="inner")
    frame[names] = frame[names].astype(float).replace([np.inf, -np.inf], np.nan)
    if drop_incomplete:
        frame = frame.dropna(subset=names)
    if frame.empty:
        raise TrainingError("empty_dataset", "no row has both features and a label")
    frame = frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)
    assert PREV_RETURN in frame.columns
    return Dataset(frame=frame, feature_names=names, feature_set_version=version)
