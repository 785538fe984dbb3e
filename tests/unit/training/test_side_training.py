"""Walk-forward training on the indicators plus the side columns, joined point-in-time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from devtools.synthetic.bars import random_walk_panel
from indicators.feature_set import FeatureSet
from sidestreams.features import SideFeatureSet, SideSpec
from sidestreams.frame import side_computer
from sidestreams.sector import load_sector_map
from sidestreams.sources import MacroData, NewsFile
from training.walk_forward import WalkForwardConfig, run_walk_forward

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "side"
START = 1_243_886_400_000  # 2009-06-01T20:00Z


def test_walk_forward_trains_on_the_side_columns() -> None:
    spec = SideSpec(macro_series=("realgdp", "unemp"), sectors=load_sector_map())
    fs = SideFeatureSet(FeatureSet.default(), spec)
    macro = MacroData(series=spec.macro_series).load().records
    news = NewsFile(FIXTURES / "news_headlines.jsonl").load().records
    compute = side_computer(spec, macro, news)
    bars = random_walk_panel(("AAPL", "MSFT", "XOM", "JPM"), 260, start_ts_ms=START)
    frame = compute(bars, fs)
    assert frame.attrs["feature_set_version"] == fs.version != FeatureSet.default().version
    assert list(frame.columns[2:]) == list(fs.names)
    config = WalkForwardConfig(
        horizon=1, n_splits=2, models=("logistic",), drop_incomplete=False, pit_cutoffs=2
    )
    result = run_walk_forward(bars, fs, config, compute=compute)
    assert "logistic" in result.aggregate
    assert isinstance(result.table(), pd.DataFrame)
    assert result.point_in_time is not None
    assert set(spec.names) <= set(result.point_in_time.features)


def test_tickcast_train_side_builds_the_workers_feature_set_and_runs_the_canary() -> None:
    from agents.side_inputs import SideInputs
    from sidestreams.features import spec_from_settings
    from tickcast.config import Settings
    from tickcast.metrics import Metrics
    from training.cli import TrainOptions, side_training

    settings = Settings(side_macro_series="realgdp,unemp", side_news_half_life_h=12.0)
    bars = random_walk_panel(("AAPL", "MSFT"), 200, start_ts_ms=START)
    facts: dict[str, object] = {}
    options = TrainOptions(side=True, side_news=FIXTURES / "news_headlines.jsonl")
    fs, compute = side_training(options, settings, bars, facts)
    # the worker with the same TICKCAST_SIDE_* computes the same version: it scores the model
    worker_fs = SideFeatureSet(
        FeatureSet.default(), SideInputs(settings, spec_from_settings(settings), Metrics()).spec
    )
    assert fs.version == worker_fs.version
    assert facts["side_cutoffs_checked"] == 8
    assert facts["side_rejected"] == 3  # the fixture's three bad lines
    assert list(compute(bars, fs).columns[2:]) == list(fs.names)


def test_readers_get_the_workers_feature_set_from_the_settings() -> None:
    from sidestreams.features import worker_feature_set
    from tickcast.config import Settings

    assert worker_feature_set(Settings()).version == FeatureSet.default().version
    on = Settings(side_features=True, side_macro_series="realgdp")
    fs = worker_feature_set(on)
    assert isinstance(fs, SideFeatureSet)
    assert fs.names[-15:] != FeatureSet.default().names[-15:]
    assert fs.version == worker_feature_set(on).version
