"""Every Alpha158 feature at every step against an independent float64 pandas transcription."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indicators.alpha158 import NAMES
from tests.unit.indicators.alpha158.conftest import run_incremental, with_vwap
from tests.unit.indicators.alpha158.reference import alpha158_reference

RTOL = 1e-9
#: Absolute floor for values that are 0 in exact arithmetic and rounding noise in either
#: implementation (the residual of a two-point fit; a correlation of ~1e-14 computed as
#: -1e-13 from running co-moments). Every feature is scale-free, of order 1.
ATOL = 1e-12


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns) == list(NAMES)
    g, w = got.to_numpy(), want.to_numpy()
    nan_g, nan_w = np.isnan(g), np.isnan(w)
    where = np.argwhere(nan_g != nan_w)
    assert where.size == 0, [(int(r), NAMES[c], g[r, c], w[r, c]) for r, c in where[:10]]
    ok = nan_w | (np.abs(g - w) <= RTOL * np.abs(w) + ATOL)
    bad = np.argwhere(~ok)
    assert bad.size == 0, [(int(r), NAMES[c], g[r, c], w[r, c]) for r, c in bad[:10]]


@pytest.mark.parametrize("symbol", ["AAPL", "BAC", "F", "GE", "XOM", "NVDA"])
def test_every_feature_at_every_step_on_real_bars(
    sp500_symbols: dict[str, pd.DataFrame], symbol: str
) -> None:
    bars = with_vwap(sp500_symbols[symbol])
    assert len(bars) >= 240
    assert_same(run_incremental(bars), alpha158_reference(bars))


def test_edge_cases_flat_prices_ties_and_zero_volume(edge_bars: pd.DataFrame) -> None:
    bars = with_vwap(edge_bars)
    got, want = run_incremental(bars), alpha158_reference(bars)
    assert_same(got, want)
    # The edge cases are really exercised: guards fire on the flat stretch and ties exist.
    flat = got.loc[130]
    assert np.isnan(flat["RSQR20"])
    assert np.isnan(flat["CORR20"])
    assert flat["STD20"] == 0.0
    assert flat["SUMP20"] == 0.0


def test_values_exist_from_the_first_bar_as_in_qlib(edge_bars: pd.DataFrame) -> None:
    first = run_incremental(with_vwap(edge_bars)).iloc[0]
    assert first[["MA5", "RANK60", "IMAX60"]].tolist() == [1.0, 1.0, 1 / 60]
    assert first["CNTP5"] == 0.0
    assert first[["ROC5", "STD5", "SUMP5", "CORD5"]].isna().all()
