"""compute_frame: the streaming code over a DataFrame, point in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_panel
from indicators.errors import FrameError
from indicators.feature_set import FeatureSet, spec
from indicators.frame import compute_frame
from tests.unit.indicators.conftest import to_bars


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return random_walk_panel(("AAA", "BBB", "CCC"), n=400, seed=2)


@pytest.fixture(scope="module")
def features(panel: pd.DataFrame) -> pd.DataFrame:
    return compute_frame(panel)


def test_equals_the_stream_state_per_symbol(panel, features) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    assert list(features.columns) == ["ts_ms", "symbol", *fs.names]
    assert features.index.equals(panel.index)
    assert features.attrs["feature_set_version"] == fs.version
    for symbol, rows in panel.groupby("symbol"):
        state = fs.new_state()
        expected = np.array([state.update(bar) for bar in to_bars(rows)])
        got = features.loc[rows.index, list(fs.names)].to_numpy()
        np.testing.assert_array_equal(got, expected, err_msg=str(symbol))
        assert (features.loc[rows.index, "symbol"] == symbol).all()


def test_row_order_does_not_matter(panel, features) -> None:  # type: ignore[no-untyped-def]
    shuffled = panel.sample(frac=1.0, random_state=0)
    again = compute_frame(shuffled)
    pd.testing.assert_frame_equal(again.loc[panel.index], features)


def test_no_look_ahead(panel, features) -> None:  # type: ignore[no-untyped-def]
    """Rows up to a cut-off are identical whether or not later bars exist."""
    cutoff = int(panel.ts_ms.quantile(0.6))
    past = panel[panel.ts_ms <= cutoff]
    pd.testing.assert_frame_equal(compute_frame(past), features.loc[past.index])
    # and changing a future bar changes nothing before it
    future = panel.copy()
    later = future.ts_ms > cutoff
    future.loc[later, ["open", "high", "low", "close"]] *= 3.0
    changed = compute_frame(future)
    pd.testing.assert_frame_equal(changed.loc[past.index], features.loc[past.index])
    assert not np.allclose(changed.loc[later, "sma_5"], features.loc[later, "sma_5"])


def test_works_without_quote_columns(panel) -> None:  # type: ignore[no-untyped-def]
    bars = panel.drop(columns=["bid", "ask", "bid_size", "ask_size"])
    out = compute_frame(bars, FeatureSet([spec("quotes"), spec("sma", period=3)]))
    assert out[["spread", "mid", "rel_spread", "quote_imb"]].isna().all().all()
    assert out["sma_3"].notna().sum() == len(bars) - 3 * 2


def test_missing_column_raises(panel) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameError, match="volume"):
        compute_frame(panel.drop(columns=["volume"]))


def test_invalid_row_raise_or_skip(panel) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet([spec("sma", period=3), spec("obv")])
    bad = panel.copy()
    victim = bad.index[bad.symbol == "BBB"][10]
    bad.loc[victim, "close"] = np.nan
    with pytest.raises(FrameError, match=f"row {victim}"):
        compute_frame(bad, fs)
    skipped = compute_frame(bad, fs, on_invalid="skip")
    assert skipped.loc[victim, list(fs.names)].isna().all()
    without = compute_frame(bad.drop(index=victim), fs)
    pd.testing.assert_frame_equal(skipped.drop(index=victim), without)


def test_duplicate_timestamps_are_refused(panel) -> None:  # type: ignore[no-untyped-def]
    doubled = pd.concat([panel, panel.iloc[[5]]], ignore_index=True)
    with pytest.raises(FrameError, match="duplicate"):
        compute_frame(doubled)


def test_empty_frame(panel) -> None:  # type: ignore[no-untyped-def]
    out = compute_frame(panel.iloc[:0])
    assert len(out) == 0
    assert len(out.columns) == 2 + len(FeatureSet.default().names)
