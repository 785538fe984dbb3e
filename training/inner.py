"""Models that split their own training window in time: the base of tuning and stacking.

A :class:`WindowModel` is fitted on the rows of ONE walk-forward training window and needs
their timeline to make an inner, time-ordered split of it (Optuna's validation block, the
stack's out-of-fold blocks). It declares ``sequence_keys = ("ts_ms", "label_end_ts")``, so
:func:`training.walk_forward.fit_model` hands it those two columns beside the features; the
inner split purges training rows whose label reaches into the inner test block, exactly as
the outer split does (:class:`training.splits.WalkForwardSplitter`). Nothing outside the
rows it is given is ever seen: the outer fold's test period is not among them.

At prediction the key columns are dropped when present (walk-forward) and absent in the
stream (the scorer passes the feature matrix only).

>>> import numpy as np, pandas as pd
>>> ts = np.arange(8, dtype="int64")
>>> [(f.tolist(), t.tolist()) for f, t in inner_blocks(ts, ts + 1, 1)]
[([0, 1, 2], [4, 5, 6, 7])]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from training.errors import SplitError, TrainingError
from training.models import Model
from training.splits import WalkForwardSplitter

WINDOW_KEYS = ("ts_ms", "label_end_ts")


def inner_blocks(
    ts: np.ndarray, label_end_ts: np.ndarray, n_blocks: int, test_fraction: float | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(fit_rows, test_rows)`` positions of ``n_blocks`` time-ordered inner splits.

    The last ``n_blocks`` blocks of unique timestamps are inner test blocks; each is fitted
    on every earlier timestamp whose label ends before the block starts (purged). With
    ``test_fraction`` (one block only) the block is that share of the timestamps.
    """
    n_ts = np.unique(ts).size
    size = None
    if test_fraction is not None:
        size = max(1, round(n_ts * test_fraction))
    splitter = WalkForwardSplitter(n_splits=n_blocks, test_size=size, min_train_size=1)
    try:
        for fold in splitter.split(ts, label_end_ts):
            if fold.train_idx.size and fold.test_idx.size:
                yield fold.train_idx, fold.test_idx
    except SplitError as exc:
        raise TrainingError("window_too_short", f"inner split: {exc}") from exc


class WindowModel(Model):
    """A model fitted with its window's timeline (see the module docstring)."""

    sequence_keys = WINDOW_KEYS

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> None:
        missing = [k for k in WINDOW_KEYS if k not in X.columns]
        if missing:
            raise TrainingError("missing_keys", f"{self.name} needs the columns {missing}")
        features = X.drop(columns=list(WINDOW_KEYS))
        ts = X["ts_ms"].to_numpy(dtype="int64")
        label_end = X["label_end_ts"].to_numpy(dtype="int64")
        self._fit_window(features, y, ts, label_end)

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._proba_features(X.drop(columns=[k for k in WINDOW_KEYS if k in X.columns]))

    def _fit_window(
        self, X: pd.DataFrame, y: np.ndarray, ts: np.ndarray, label_end_ts: np.ndarray
    ) -> None:
        raise NotImplementedError

    def _proba_features(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError
