"""The pipeline on the real indicator library (``indicators.compute_frame``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_panel
from indicators import FeatureSet, compute_frame
from training.errors import LookAheadError
from training.walk_forward import WalkForwardConfig, run_walk_forward

FAST = {"xgboost": {"n_estimators": 30}, "lightgbm": {"n_estimators": 30}}
BARS = random_walk_panel(("AAA", "BBB", "CCC", "DDD"), n=260, seed=3)


def test_default_feature_set_is_point_in_time_and_random_walk_is_chance() -> None:
    fs = FeatureSet.default()
    cfg = WalkForwardConfig(
        n_splits=3, models=("xgboost", "logistic", "zero_return"), model_params=FAST
    )
    result = run_walk_forward(BARS, fs, cfg)  # default computer: indicators.compute_frame
    assert result.feature_set_version == fs.version
    assert result.feature_names == list(fs.names)
    assert result.point_in_time is not None
    assert len(result.point_in_time.cutoffs) == 4
    table = result.table()
    for name in ("xgboost", "logistic"):
        assert table.loc[name, "accuracy_lower"] <= 0.5 <= table.loc[name, "accuracy_upper"]


@dataclass(frozen=True)
class PeekingSet:
    inner: FeatureSet

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.inner.names, "next_close_ratio")

    @property
    def version(self) -> str:
        return self.inner.version + "-peek"


def peeking_compute(bars: pd.DataFrame, fs: PeekingSet) -> pd.DataFrame:
    out = compute_frame(bars, fs.inner)
    nxt = bars.sort_values("ts_ms").groupby("symbol")["close"].shift(-1)
    return out.assign(next_close_ratio=(nxt / bars["close"]).reindex(out.index))


def test_a_peeking_column_on_top_of_real_indicators_is_refused() -> None:
    fs = PeekingSet(FeatureSet.default())
    with pytest.raises(LookAheadError) as exc:
        run_walk_forward(
            BARS, fs, WalkForwardConfig(models=("zero_return",)), compute=peeking_compute
        )
    assert exc.value.features == ["next_close_ratio"]
