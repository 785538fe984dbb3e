"""The training join (sidestreams.frame) against references, and its feature columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_panel
from indicators import compute_frame
from sidestreams.features import DAY_MS, SideSpec, SideState, side_feature_columns
from sidestreams.frame import join_side, side_frame
from sidestreams.sector import load_sector_map
from sidestreams.sentiment import score_headline
from sidestreams.sources import MacroData, NewsFile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "side"
START_2008 = 1_199_188_800_000  # 2008-01-01T12:00Z


def _bars(n: int = 500) -> pd.DataFrame:
    return random_walk_panel(("AAPL", "MSFT", "XOM", "JPM"), n, start_ts_ms=START_2008)


def test_names_and_warmup() -> None:
    spec = SideSpec(macro_series=("realgdp", "UNRATE"), half_life_hours=1.5, sectors={})
    assert spec.names == (
        "macro_realgdp", "macro_realgdp_age_d", "macro_unrate", "macro_unrate_age_d",
        "news_sent_hl1p5h", "news_weight_hl1p5h", "news_age_d",
        "sector_ret", "market_ret", "rel_sector_ret", "rel_market_ret",
    )  # fmt: skip
    assert side_feature_columns(spec) == (spec.names, 2)
    assert side_feature_columns(SideSpec(news=False)) == ((), 0)
    with pytest.raises(ValueError, match="half_life"):
        SideSpec(half_life_hours=0.0)
    with pytest.raises(ValueError, match="distinct"):
        SideSpec(macro_series=("a-b", "a_b"))


def test_macro_columns_match_merge_asof_on_publication_time() -> None:
    bars = _bars()
    macro = MacroData(series=("realgdp", "unemp")).load().records
    frame = side_frame(bars, SideSpec(macro_series=("realgdp", "unemp"), news=False), macro)
    for series in ("realgdp", "unemp"):
        side = pd.DataFrame([r for r in macro if r["series_id"] == series])
        ref = (
            pd.merge_asof(
                bars[["ts_ms"]].reset_index().sort_values("ts_ms"),
                side[["published_at", "value"]],
                left_on="ts_ms",
                right_on="published_at",
            )
            .set_index("index")
            .sort_index()
        )
        np.testing.assert_array_equal(frame[f"macro_{series}"], ref["value"])
        age = (ref["ts_ms"] - ref["published_at"]) / DAY_MS
        np.testing.assert_allclose(frame[f"macro_{series}_age_d"], age, rtol=0, atol=0)
    # the sample covers 2008-01..2009-05: Q3 2008 (published 2008-10-30) shows from then on
    at = frame[frame["ts_ms"] >= 1_225_369_800_000]["macro_realgdp"].iloc[0]
    assert at == 13324.6


def test_news_columns_match_the_decay_definition() -> None:
    bars = _bars(800)
    news = NewsFile(FIXTURES / "news_headlines.jsonl").load().records
    spec = SideSpec(half_life_hours=36.0)
    frame = side_frame(bars, spec, news=news)
    hl_ms = 36.0 * 3_600_000
    for row in frame.itertuples(index=False):
        ts, sym = int(row[0]), row[1]
        items = [(n["published_at"], score_headline(n["headline"]))
                 for n in news if sym in n["symbols"] and n["published_at"] <= ts]  # fmt: skip
        w = [0.5 ** ((ts - p) / hl_ms) for p, _ in items]
        mean = sum(wi * c for wi, (_, c) in zip(w, items, strict=True)) / sum(w) if w else math.nan
        got_mean, got_w, got_age = row[2], row[3], row[4]
        assert got_w == pytest.approx(sum(w), rel=1e-9, abs=1e-300)
        if w:
            assert got_mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
            assert got_age == (ts - max(p for p, _ in items)) / 86_400_000
        else:
            assert math.isnan(got_mean)
            assert math.isnan(got_age)
    # the fixture's headlines do move the scores both ways
    assert frame["news_sent_hl36h"].max() > 0.3
    assert frame["news_sent_hl36h"].min() < -0.3


def test_join_adds_the_side_columns_to_compute_frame() -> None:
    bars = _bars(120)
    spec = SideSpec(macro_series=("realgdp",), sectors=load_sector_map())
    joined = join_side(
        compute_frame(bars), bars, spec, MacroData(series=("realgdp",)).load().records
    )
    assert list(joined.columns[-len(spec.names) :]) == list(spec.names)
    assert joined.index.equals(bars.index)
    with pytest.raises(ValueError, match="already has"):
        join_side(joined, bars, spec)


def test_state_refuses_a_non_finite_macro_value_and_ignores_unknown_series() -> None:
    state = SideState(SideSpec(macro_series=("a",)))
    obs = {"series_id": "a", "value": math.inf, "reference_period": "2009-01-01",
           "published_at": 0, "source": "t"}  # fmt: skip
    with pytest.raises(ValueError, match="finite"):
        state.add_macro(obs)  # type: ignore[arg-type]
    assert state.add_macro({**obs, "series_id": "b"}) is None  # type: ignore[typeddict-item]
