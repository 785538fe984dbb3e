"""Side streams on the real broker: ticks + the macro series + a news fixture, replayed through
a real worker, give the training frame's features (issue #22's 'done when')."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    """With one partition the ticks reach the worker in event time and every column equals
    the frame's; with four the worker reads partitions unevenly, and the sector columns
    (cross-symbol, docs/side_streams.md) are the only ones allowed to differ."""
    settings = settings.model_copy(
        update={
            "partitions": partitions,
            "side_features": True,
            "side_macro_series": "realgdp,unemp",
            "side_news_half_life_h": 36.0,
            "scoring_enabled": False,
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
    assert differ == ([] if partitions == 1 else [n for n in differ if n in SECTOR_FEATURES])
    side = want[list(spec.names)]
    assert side["macro_realgdp"].nunique() == 3
    assert side["news_sent_hl36h"].notna().sum() > 100
