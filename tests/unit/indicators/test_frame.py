"""compute_frame: the streaming code over a DataFrame, point in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_panel
from indicators.errors import FrameError, InvalidBarError
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


@pytest.mark.parametrize("name", ["alpha158", "classic+alpha158"])
def test_alpha158_runs_vectorised_with_the_per_symbol_values(panel, name) -> None:  # type: ignore[no-untyped-def]
    """The vectorised Alpha158 block equals the stream's per-symbol state, bit for bit, on
    shuffled rows of symbols of unequal lengths with refused bars (skipped) in between."""
    from indicators.feature_sets import feature_set

    fs = feature_set(name)
    bars = panel.drop(index=panel.index[panel["symbol"] == "CCC"][150:]).copy()
    bad = bars.index[bars["symbol"] == "BBB"][[3, 70, 200]]
    bars.loc[bad[0], "close"] = np.nan
    bars.loc[bad[1], "high"] = bars.loc[bad[1], "low"] / 2
    dup = bars.loc[[bars.index[bars["symbol"] == "AAA"][90]]].assign(close=1.0)
    bars = pd.concat([bars, dup.set_axis([10_000])]).sample(frac=1.0, random_state=1)
    got = compute_frame(bars, fs, on_invalid="skip")
    for symbol, rows in bars.sort_values("ts_ms", kind="stable").groupby("symbol"):
        state = fs.new_state()
        nan_row = [np.nan] * len(fs.names)
        expected = []
        for bar in to_bars(rows):
            try:
                expected.append(state.update(bar))
            except InvalidBarError:  # a refusal: the frame's row is all-NaN
                expected.append(nan_row)
        values = got.loc[rows.index, list(fs.names)].to_numpy()
        np.testing.assert_array_equal(values, np.array(expected), err_msg=str(symbol))
    assert got.loc[bad[0], list(fs.names)].isna().all()
    pair = got.loc[[dup.index[0], 10_000], list(fs.names)].isna().all(axis=1)
    assert pair.sum() == 1  # one bar of a duplicated ts_ms is refused (the later row)
    with pytest.raises(FrameError, match="row"):
        compute_frame(bars, fs)
