"""sidestreams.asof against independent references (pandas merge_asof, a direct numpy sum)."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidestreams.asof import AsOfSeries, DecayedSentiment

_times = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=200, deadline=None)
@given(
    pubs=st.lists(_times, min_size=1, max_size=40, unique=True),
    queries=st.lists(_times, min_size=1, max_size=40),
)
def test_latest_published_value_matches_merge_asof(pubs: list[int], queries: list[int]) -> None:
    values = [float(i) for i in range(len(pubs))]
    series = AsOfSeries()
    for p, v in zip(pubs, values, strict=True):  # any arrival order: all before the queries
        series.add(p, v)
    side = pd.DataFrame({"pub": pubs, "value": values}).sort_values("pub")
    left = pd.DataFrame({"t": sorted(queries)})
    ref = pd.merge_asof(left, side, left_on="t", right_on="pub", direction="backward")
    for t, value, pub in zip(ref["t"], ref["value"], ref["pub"], strict=True):
        got = series.at(int(t))
        if math.isnan(value):
            assert got is None
        else:
            assert got == (value, int(pub))


def test_a_late_value_counts_from_then_on_never_before() -> None:
    series = AsOfSeries()
    assert series.add(100, 1.0) is False
    assert series.at(150) == (1.0, 100)
    assert series.add(120, 2.0) is True  # published before an answered time: late
    assert series.at(160) == (2.0, 120)  # applied from then on
    assert series.add(500, 3.0) is False  # published ahead: not late
    assert series.at(499) == (2.0, 120)


def test_same_publication_time_replaces_and_memory_is_bounded() -> None:
    series = AsOfSeries(max_records=3)
    series.add(10, 1.0)
    series.add(10, 1.5)
    assert series.at(10) == (1.5, 10)
    for p in range(20, 80, 10):
        series.add(p, float(p))
    assert len(series.pubs) == 3
    assert series.at(1000) == (70.0, 70)
    series.trim(65)
    assert series.pubs == [60, 70]
    assert pickle.loads(pickle.dumps(series)) == series


def _reference(items: list[tuple[int, float]], t: int, half_life: float) -> tuple[float, float]:
    """Decayed mean and weight by the definition, straight from every item."""
    arr = np.array([(p, c) for p, c in items if p <= t], dtype=float).reshape(-1, 2)
    w = 0.5 ** ((t - arr[:, 0]) / half_life)
    total = float(w.sum())
    return (float((w * arr[:, 1]).sum()) / total if total else math.nan), total


@pytest.mark.parametrize("seed", range(5))
def test_decayed_sentiment_matches_the_definition_at_every_query(seed: int) -> None:
    rng = random.Random(seed)
    items = [(rng.randrange(0, 100_000), rng.uniform(-1, 1)) for _ in range(60)]
    rng.shuffle(items)
    table = DecayedSentiment(half_life_ms=7_000.0)
    for p, c in items:  # all items arrive before the first query, in random order
        assert table.add(p, c) is False
    for t in sorted(rng.randrange(0, 110_000) for _ in range(80)):
        mean, weight, last = table.at(t)
        ref_mean, ref_weight = _reference(items, t, 7_000.0)
        assert weight == pytest.approx(ref_weight, rel=1e-9, abs=1e-300)
        if math.isnan(ref_mean):
            assert math.isnan(mean)
            assert last is None
        else:
            assert mean == pytest.approx(ref_mean, rel=1e-9, abs=1e-12)
            assert last == max(p for p, _ in items if p <= t)
    assert len(table.pending) <= 60


def test_arrival_order_of_timely_items_does_not_change_a_bit() -> None:
    items = [(i * 1_000 + (i * 7919) % 900, ((i * 37) % 21 - 10) / 10) for i in range(40)]
    queries = list(range(0, 45_000, 1_300))
    runs = []
    for order in (items, items[::-1], sorted(items, key=lambda it: it[1])):
        table = DecayedSentiment(half_life_ms=5_000.0)
        for p, c in order:
            table.add(p, c)
        runs.append([table.at(t) for t in queries])
    assert runs[0] == runs[1] == runs[2]  # exact equality: the same fold sequence


def test_a_late_item_is_exact_afterwards_and_never_retroactive() -> None:
    table = DecayedSentiment(half_life_ms=1_000.0)
    table.add(0, 1.0)
    before = table.at(2_000)
    assert table.add(1_500, -1.0) is True  # the table already answered for t=2000
    assert table.at(2_000)[1] != before[1]  # a fresh query at 2000 sees it...
    mean, weight, last = table.at(3_000)
    ref_mean, ref_weight = _reference([(0, 1.0), (1_500, -1.0)], 3_000, 1_000.0)
    assert (mean, weight) == pytest.approx((ref_mean, ref_weight), rel=1e-12)
    assert last == 1_500
    assert before == pytest.approx((1.0, 0.25, 0))  # ...the earlier answer stays as it was


def test_a_score_that_is_not_finite_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        DecayedSentiment(half_life_ms=1.0).add(0, math.nan)


def test_pending_is_bounded() -> None:
    table = DecayedSentiment(half_life_ms=1_000.0, max_pending=5)
    for p in range(10):
        table.add(1_000 + p, 0.5)
    assert len(table.pending) == 5
    assert table.at(2_000)[1] == pytest.approx(
        sum(0.5 ** ((2_000 - 1_000 - p) / 1_000) for p in range(10))
    )
