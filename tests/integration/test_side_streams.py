"""Side streams on the real broker: ticks + the macro series + a news fixture, replayed through
a real worker, give the training frame's features (issue #22's 'done when')."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_panel
from indicators import compute_frame
from indicators.feature_set import FeatureSet
from sidestreams.features import spec_from_settings
from sidestreams.frame import join_side
from sidestreams.publish import publish_side
from sidestreams.sector import SECTOR_FEATURES
from sidestreams.sources import MacroData, NewsFile
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, dedupe_features, read_topic
from tickcast.config import Settings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "side"
START = 1_243_886_400_000  # 2009-06-01T20:00Z: two GDP releases and the news fixture follow


@pytest.mark.parametrize("partitions", [1, 4])
def test_replayed_live_features_equal_the_training_frame(
    settings: Settings, tmp_path: Path, partitions: int
) -> None:
    """With one partition the ticks reach the worker in event time; with four it reads them
    unevenly, and the broadcast sector board (TICKCAST_SIDE_SECTOR_SYNC) still answers each
    row once final: every column equals the frame's either way."""
    settings = settings.model_copy(
        update={
            "partitions": partitions,
            "side_features": True,
            "side_macro_series": "realgdp,unemp",
            "side_news_half_life_h": 36.0,
            "scoring_enabled": False,
            "side_sector_sync": True,
        }
    )
    apply_topics(settings)
    bars = random_walk_panel(("AAPL", "MSFT", "XOM", "JPM"), 300, start_ts_ms=START)
    macro = MacroData(series=("realgdp", "unemp", "infl")).load().records
    news = NewsFile(FIXTURES / "news_headlines.jsonl").load().records
    sent = publish_side(settings, [*macro, *news])
    assert sent == {"macro": len(macro), "news": sum(len(n["symbols"]) for n in news)}
    publish(settings, bars, "test")

    spec = spec_from_settings(settings)
    frame = join_side(compute_frame(bars), bars, spec, macro, news)
    names = [*FeatureSet.default().names, *spec.names]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        got = read_topic(
            settings, "features", "FeatureVector", lambda r: len(r) >= len(bars),
            alive=worker.alive,
        )  # fmt: skip
    finally:
        worker.stop()
    live = dedupe_features(got)
    assert len(live) == len(bars)
    want = frame.sort_values(["symbol", "ts_ms"]).reset_index(drop=True)
    assert list(live["symbol"]) == list(want["symbol"])
    assert list(live["ts"]) == list(want["ts_ms"])
    values = np.array([list(v) for v in live["values"]])
    expected = want[names].to_numpy()
    same = (values == expected) | (np.isnan(values) & np.isnan(expected))
    differ = [n for n, ok in zip(names, same.all(axis=0), strict=True) if not ok]
    assert differ == []
    side = want[list(spec.names)]
    assert side["macro_realgdp"].nunique() == 3
    assert side["news_sent_hl36h"].notna().sum() > 100
    assert side[list(SECTOR_FEATURES)].notna().sum().min() > 1000  # cross-symbol, all final


def test_a_late_news_item_counts_from_then_on_never_before(
    settings: Settings, tmp_path: Path
) -> None:
    """The documented rule on the real broker: a headline published before ticks the worker
    already scored changes none of them, and every later row has it (up to rounding)."""
    settings = settings.model_copy(
        update={"partitions": 1, "side_features": True, "side_macro_series": "realgdp",
                "side_news_half_life_h": 240.0, "scoring_enabled": False}
    )  # fmt: skip
    apply_topics(settings)
    bars = random_walk_panel(("AAPL", "MSFT"), 300, start_ts_ms=START)
    first, second = (
        bars[bars["ts_ms"] < bars["ts_ms"].iloc[400]],
        bars[bars["ts_ms"] >= bars["ts_ms"].iloc[400]],
    )
    news = NewsFile(FIXTURES / "news_headlines.jsonl").load().records
    late = {
        "symbols": ["AAPL"],
        "headline": "Apple recalls laptops; lawsuits and losses mount",
        "source": "test",
        "published_at": int(first["ts_ms"].iloc[-100]),  # 50 bars before the last scored one
        "id": "late",
    }
    publish_side(settings, news)
    publish(settings, first, "test")
    spec = spec_from_settings(settings)
    names = [*FeatureSet.default().names, *spec.names]
    without = join_side(compute_frame(bars), bars, spec, [], news)
    with_late = join_side(compute_frame(bars), bars, spec, [], [*news, late])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        read_topic(settings, "features", "FeatureVector", lambda r: len(r) >= len(first),
                   alive=worker.alive)  # fmt: skip
        publish_side(settings, [late])
        time.sleep(3.0)  # fetched by the worker's news consumer before the next ticks
        publish(settings, second, "test")
        got = read_topic(settings, "features", "FeatureVector", lambda r: len(r) >= len(bars),
                         alive=worker.alive)  # fmt: skip
    finally:
        worker.stop()
    live = dedupe_features(got).set_index(["symbol", "ts"])

    def rows(frame: pd.DataFrame, part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        want = frame.loc[part.index].set_index(["symbol", "ts_ms"])[names]
        got = np.array([list(live.loc[key, "values"]) for key in want.index])
        return got, want.to_numpy()

    got1, want1 = rows(without, first)  # scored before the item arrived: never revised
    np.testing.assert_array_equal(got1, want1)
    got2, want2 = rows(with_late, second)  # every later row has it (up to rounding)
    news_cols = [names.index(c) for c in spec.names if c.startswith("news_")]
    others = [i for i in range(len(names)) if i not in news_cols]
    np.testing.assert_array_equal(got2[:, others], want2[:, others])
    np.testing.assert_allclose(got2[:, news_cols], want2[:, news_cols], rtol=1e-12, atol=1e-15)
    _, before = rows(without, second)
    assert not np.allclose(got2[:, news_cols], before[:, news_cols], equal_nan=True)
