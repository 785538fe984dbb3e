"""Named feature sets: listing, versions, the union a worker computes, Alpha158 in frames."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from indicators import FeatureSet, FeatureSetError, compute_frame
from indicators.alpha158 import NAMES
from indicators.feature_sets import describe, feature_set, union_of
from tests.unit.indicators.alpha158.conftest import make_edge_bars, run_incremental, with_vwap


def test_listing_has_counts_versions_and_warmups() -> None:
    rows = {r["name"]: r for r in describe()}
    assert [(n, r["count"], r["warmup"]) for n, r in rows.items()] == [
        ("classic", 41, 61),
        ("alpha158", 158, 61),
        ("classic+alpha158", 199, 61),
    ]
    # classic is today's default set, version unchanged by the new sets.
    assert rows["classic"]["version"] == FeatureSet.default().version
    assert len({r["version"] for r in rows.values()}) == 3


def test_union_and_unknown_names() -> None:
    assert union_of(["alpha158", "classic"]) == "classic+alpha158"
    assert union_of(["classic+alpha158", "alpha158"]) == "classic+alpha158"
    assert union_of(["alpha158"]) == "alpha158"
    union = feature_set("classic+alpha158").names
    assert union == FeatureSet.default().names + NAMES
    with pytest.raises(FeatureSetError, match="unknown feature set"):
        feature_set("alpha360")
    with pytest.raises(FeatureSetError, match="unknown feature set"):
        union_of(["nope"])


def test_training_frames_run_the_same_alpha158_code_as_the_stream() -> None:
    bars = make_edge_bars().assign(symbol="EDGE")
    frame = compute_frame(bars, feature_set("alpha158"))
    want = run_incremental(with_vwap(bars))
    np.testing.assert_array_equal(frame[list(NAMES)].to_numpy(), want.to_numpy())


def test_state_pickles_mid_stream_and_stays_bounded() -> None:
    fs = feature_set("classic+alpha158")
    bars = make_edge_bars()
    frame = compute_frame(bars.assign(symbol="S"), fs)
    state = fs.new_state()
    sizes = []
    from tests.unit.indicators.conftest import to_bars

    for i, bar in enumerate(to_bars(bars)):
        if i % 97 == 0:
            blob = pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
            sizes.append(len(blob))
            state = pickle.loads(blob)
        vec = state.update(bar)
    np.testing.assert_array_equal(np.asarray(vec), frame.iloc[-1][list(fs.names)].to_numpy(float))
    assert max(sizes[2:]) - min(sizes[2:]) < 2_000  # bounded: no growth with history
    assert isinstance(frame, pd.DataFrame)
