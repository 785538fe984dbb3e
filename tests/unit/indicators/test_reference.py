"""Every indicator against an independent reference at every step of a 2,000-bar series.

TA-Lib where it has the indicator (same seeding conventions, so from the first defined bar
on), pandas formulas otherwise. Warm-up must match too: our ``None`` exactly where the
reference has ``NaN``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib

from devtools.synthetic.bars import random_walk_bars
from indicators.base import Indicator
from indicators.feature_set import REGISTRY
from indicators.microstructure import Quotes
from indicators.momentum import RSI, LogReturn, Stochastic
from indicators.trend import EMA, MACD, SMA
from indicators.volatility import ATR, BollingerBands, Donchian, RealizedVol
from indicators.volume import OBV, VWAP, SessionVWAP, VolumeZScore
from tests.unit.indicators.conftest import to_bars

Reference = Callable[[pd.DataFrame], list[np.ndarray]]


def _bb(period: int, k: float) -> Reference:
    def ref(d: pd.DataFrame) -> list[np.ndarray]:
        up, mid, lo = talib.BBANDS(d.close.to_numpy(), period, k, k, 0)
        return [up, mid, lo, (d.close.to_numpy() - lo) / (up - lo), (up - lo) / mid]

    return ref


def _donchian(period: int) -> Reference:
    def ref(d: pd.DataFrame) -> list[np.ndarray]:
        hi = talib.MAX(d.high.to_numpy(), period)
        lo = talib.MIN(d.low.to_numpy(), period)
        return [hi, lo, (hi + lo) / 2]

    return ref


def _vwap(window: int) -> Reference:
    def ref(d: pd.DataFrame) -> list[np.ndarray]:
        tp = (d.high + d.low + d.close) / 3
        return [((tp * d.volume).rolling(window).sum() / d.volume.rolling(window).sum()).to_numpy()]

    return ref


def _session_vwap(session_ms: int) -> Reference:
    def ref(d: pd.DataFrame) -> list[np.ndarray]:
        tp = (d.high + d.low + d.close) / 3
        session = d.ts_ms // session_ms
        pv = (tp * d.volume).groupby(session).cumsum()
        return [(pv / d.volume.groupby(session).cumsum()).to_numpy()]

    return ref


def _quotes(d: pd.DataFrame) -> list[np.ndarray]:
    spread = d.ask - d.bid
    mid = (d.ask + d.bid) / 2
    imb = (d.bid_size - d.ask_size) / (d.bid_size + d.ask_size)
    return [spread.to_numpy(), mid.to_numpy(), (spread / mid).to_numpy(), imb.to_numpy()]


# (indicator factory, reference) — several parameter sets per kind.
CASES: list[tuple[Callable[[], Indicator], Reference]] = [
    *[(lambda p=p: SMA(p), lambda d, p=p: [talib.SMA(d.close.to_numpy(), p)]) for p in (1, 5, 20)],
    *[(lambda p=p: EMA(p), lambda d, p=p: [talib.EMA(d.close.to_numpy(), p)]) for p in (2, 12, 50)],
    *[(lambda p=p: RSI(p), lambda d, p=p: [talib.RSI(d.close.to_numpy(), p)]) for p in (2, 14)],
    *[
        (lambda a=a: MACD(*a), lambda d, a=a: list(talib.MACD(d.close.to_numpy(), *a)))
        for a in ((12, 26, 9), (5, 35, 5), (3, 10, 1))
    ],
    *[(lambda a=a: BollingerBands(*a), _bb(*a)) for a in ((20, 2.0), (10, 1.5))],
    *[
        (
            lambda p=p: ATR(p),
            lambda d, p=p: [talib.ATR(d.high.to_numpy(), d.low.to_numpy(), d.close.to_numpy(), p)],
        )
        for p in (1, 14)
    ],
    *[
        (
            lambda a=a: Stochastic(*a),
            lambda d, a=a: list(
                talib.STOCH(
                    d.high.to_numpy(), d.low.to_numpy(), d.close.to_numpy(), a[0], a[1], 0, a[2], 0
                )
            ),
        )
        for a in ((14, 3, 3), (5, 3, 2), (9, 1, 1))
    ],
    *[(lambda p=p: Donchian(p), _donchian(p)) for p in (20, 55)],
    (OBV, lambda d: [talib.OBV(d.close.to_numpy(), d.volume.to_numpy())]),
    *[(lambda w=w: VWAP(w), _vwap(w)) for w in (1, 20)],
    (SessionVWAP, _session_vwap(86_400_000)),
    *[
        (lambda h=h: LogReturn(h), lambda d, h=h: [np.log(d.close / d.close.shift(h)).to_numpy()])
        for h in (1, 5, 60)
    ],
    *[
        (
            lambda w=w: RealizedVol(w),
            lambda d, w=w: [np.sqrt((np.log(d.close).diff() ** 2).rolling(w).sum()).to_numpy()],
        )
        for w in (10, 20)
    ],
    *[
        (
            lambda w=w: VolumeZScore(w),
            lambda d, w=w: [
                ((d.volume - d.volume.rolling(w).mean()) / d.volume.rolling(w).std()).to_numpy()
            ],
        )
        for w in (2, 20)
    ],
    (Quotes, _quotes),
]


def _case_id(case: tuple[Callable[[], Indicator], Reference]) -> str:
    return repr(case[0]())


def run(ind: Indicator, bars: list) -> np.ndarray:  # type: ignore[type-arg]
    """Outputs after every bar, ``None`` as ``NaN``, shape (bars, outputs)."""
    rows = []
    for bar in bars:
        ind.update_bar(bar)
        rows.append([np.nan if v is None else v for v in ind.values()])
    return np.array(rows, dtype=np.float64)


def assert_matches(ours: np.ndarray, ref: list[np.ndarray], names: tuple[str, ...]) -> None:
    assert ours.shape[1] == len(ref) == len(names)
    for j, name in enumerate(names):
        expected = np.asarray(ref[j], dtype=np.float64)
        got = ours[:, j]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"{name} warm-up")
        ok = ~np.isnan(expected)
        assert ok.sum() > len(expected) // 2, name
        scale = np.abs(expected[ok]).max()
        np.testing.assert_allclose(
            got[ok], expected[ok], rtol=1e-9, atol=1e-10 * scale, err_msg=name
        )


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_reference_at_every_step(case, daily, daily_bars) -> None:  # type: ignore[no-untyped-def]
    factory, reference = case
    ind = factory()
    assert_matches(run(ind, daily_bars), reference(daily), ind.names)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_reference_on_intraday_bars(case) -> None:  # type: ignore[no-untyped-def]
    """Minute bars with smaller moves (ties, flat closes) over several sessions."""
    df = random_walk_bars(1500, seed=21, step_ms=60_000, sigma=0.001, start_price=20.0)
    factory, reference = case
    ind = factory()
    assert_matches(run(ind, to_bars(df)), reference(df), ind.names)


def test_session_vwap_resets_each_session() -> None:
    df = random_walk_bars(1500, seed=4, step_ms=60_000)
    ind = SessionVWAP(session_ms=3_600_000)
    assert ind.names == ("vwap_session_3600000",)
    assert_matches(run(ind, to_bars(df)), _session_vwap(3_600_000)(df), ind.names)


def test_quotes_undefined_without_quotes(daily) -> None:  # type: ignore[no-untyped-def]
    bars = to_bars(daily.drop(columns=["bid", "ask", "bid_size", "ask_size"]))
    assert np.isnan(run(Quotes(), bars)).all()


def test_every_registered_indicator_has_a_reference_case() -> None:
    covered = {type(factory()).kind for factory, _ in CASES}
    # Alpha158's references (pandas transcription, Qlib's engine) are in tests/.../alpha158.
    assert covered == set(REGISTRY) - {"alpha158"}
