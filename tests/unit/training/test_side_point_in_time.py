"""The side-data leakage canary: a join by reference period is caught, the real join passes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_panel
from sidestreams.features import SideSpec
from sidestreams.frame import side_frame
from sidestreams.sources import MacroData, NewsFile, release_ms
from training.errors import LookAheadError
from training.point_in_time import check_side_point_in_time

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "side"
SPEC = SideSpec(macro_series=("realgdp", "unemp"), half_life_hours=48.0)
BARS = random_walk_panel(("AAPL", "MSFT", "XOM"), 700, start_ts_ms=1_199_188_800_000)
MACRO = MacroData(series=("realgdp", "unemp")).load().records
NEWS = NewsFile(FIXTURES / "news_headlines.jsonl").load().records


def _by_publication(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    macro = [r for r in records if "series_id" in r]
    news = [r for r in records if "symbols" in r]
    return side_frame(BARS, SPEC, macro, news)  # type: ignore[arg-type]


def _by_reference_period(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The classic leak: a figure joined from the start of the period it describes."""
    moved = [
        {**r, "published_at": release_ms(r["reference_period"])} if "series_id" in r else r
        for r in records
    ]
    return _by_publication(moved)


def test_the_publication_time_join_passes() -> None:
    cutoffs = check_side_point_in_time(_by_publication, [*MACRO, *NEWS], SPEC.names)
    assert len(cutoffs) == 8  # publications inside the bars' range were checked


def test_the_canary_fails_a_join_by_reference_period() -> None:
    with pytest.raises(LookAheadError) as caught:
        check_side_point_in_time(_by_reference_period, [*MACRO, *NEWS], SPEC.names)
    assert caught.value.reason == "truncation_mismatch"
    assert "macro_realgdp" in caught.value.features


def test_the_canary_fails_news_used_before_publication() -> None:
    early = [{**n, "published_at": n["published_at"] - 3 * 86_400_000} for n in NEWS]

    def leaky(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        # joins each item three days before it was published
        ids = {r["id"] for r in records if "symbols" in r}
        return _by_publication([r for r in early if r["id"] in ids] + list(MACRO))

    with pytest.raises(LookAheadError) as caught:
        check_side_point_in_time(leaky, [*NEWS], SPEC.names)
    assert {"news_sent_hl48h", "news_weight_hl48h"} <= set(caught.value.features)
