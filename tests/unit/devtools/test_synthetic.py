"""devtools.synthetic.market: determinism, the statistics it promises, and injected defects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate, stats

from devtools.synthetic.market import Defect, SyntheticConfig, SyntheticMarket, to_frame


def _ticks(cfg: SyntheticConfig, n: int, batch_size: int = 50_000) -> dict[str, np.ndarray]:
    batches = list(SyntheticMarket(cfg).ticks(n, batch_size))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_same_seed_same_stream_whatever_the_batch_size() -> None:
    cfg = SyntheticConfig(n_symbols=50, seed=11, quotes=True, bad_rate=0.02)
    a = _ticks(cfg, 150_000, batch_size=7_001)
    b = _ticks(cfg, 150_000, batch_size=150_000)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    c = _ticks(SyntheticConfig(n_symbols=50, seed=12), 1_000)
    assert not np.array_equal(a["price"][:1_000], c["price"])


def test_batches_have_the_asked_sizes_and_canonical_columns() -> None:
    market = SyntheticMarket(SyntheticConfig(n_symbols=600, seed=1))
    sizes = [len(b["ts_ms"]) for b in market.ticks(250_001, batch_size=100_000)]
    assert sizes == [100_000, 100_000, 50_001]
    frame = to_frame(next(market.ticks(10)))
    assert list(frame.columns[:5]) == ["symbol", "symbol_id", "ts_ms", "price", "volume"]
    assert frame["ts_ms"].dtype == np.int64
    assert len(market.symbols) == len(set(market.symbols)) == 600


def test_clean_ticks_are_in_event_time_order_and_all_symbols_trade() -> None:
    t = _ticks(SyntheticConfig(n_symbols=500, seed=2), 400_000)
    assert (np.diff(t["ts_ms"]) >= 0).all()
    assert len(np.unique(t["symbol_id"])) == 500
    assert (t["price"] > 0).all()
    assert (t["volume"] >= 1).all()
    assert (t["defect"] == Defect.CLEAN).all()
    assert np.array_equal(t["seq"], np.arange(400_000))


def test_tick_arrivals_follow_the_u_shaped_intensity() -> None:
    cfg = SyntheticConfig(n_symbols=20, seed=3, ticks_per_session=100_000, u_shape=2.0)
    t = _ticks(cfg, 300_000)
    u = ((t["ts_ms"] - cfg.start_ms) % 86_400_000) / (cfg.session_s * 1000)
    assert u.max() < 1.0
    counts, _ = np.histogram(u, bins=10, range=(0, 1))
    share = counts / counts.sum()

    def density(x: float) -> float:
        return (1 + cfg.u_shape * (2 * x - 1) ** 2) / (1 + cfg.u_shape / 3)

    expected = np.array([integrate.quad(density, i / 10, (i + 1) / 10)[0] for i in range(10)])
    np.testing.assert_allclose(share, expected, rtol=0.03)
    assert share[0] > 2 * share[5]
    assert share[-1] > 2 * share[4]


def test_bar_returns_have_each_symbols_variance_and_no_jumps_means_normal() -> None:
    cfg = SyntheticConfig(n_symbols=30, seed=4, jumps_per_session=0.0, tick_size=1e-9)
    market = SyntheticMarket(cfg)
    bars = list(market.bars(390 * 20, steps_per_batch=390))  # 20 sessions of 1-min bars
    close = np.stack([b["close"].reshape(390, 30) for b in bars]).reshape(-1, 30)
    opens = np.stack([b["open"].reshape(390, 30) for b in bars]).reshape(-1, 30)
    r = np.log(close / opens)
    daily_var = (r**2).sum(axis=0) / 20  # realised variance per session
    np.testing.assert_allclose(daily_var, market.sigma**2, rtol=0.12)
    # Each minute's variance is sigma² × its share of the session's intensity (business time).

    def density(x: float) -> float:
        return (1 + cfg.u_shape * (2 * x - 1) ** 2) / (1 + cfg.u_shape / 3)

    share = np.array([integrate.quad(density, j / 390, (j + 1) / 390)[0] for j in range(390)])
    z = r / (market.sigma * np.sqrt(np.tile(share, 20))[:, None])
    assert abs(z.var() - 1.0) < 0.03
    assert abs(stats.kurtosis(z.ravel())) < 0.15
    first_hour, midday = r[:60].var(), r[165:225].var()
    assert first_hour > 1.8 * midday


def test_jumps_fatten_the_tails() -> None:
    base = {"n_symbols": 50, "seed": 9, "tick_size": 1e-9}
    calm = SyntheticMarket(SyntheticConfig(**base, jumps_per_session=0.0))  # type: ignore[arg-type]
    jumpy = SyntheticMarket(
        SyntheticConfig(**base, jumps_per_session=5.0, jump_sigma=0.03)  # type: ignore[arg-type]
    )

    def kurt(m: SyntheticMarket) -> float:
        b = next(m.bars(390, steps_per_batch=390))
        r = np.log(b["close"] / b["open"]).reshape(390, 50) / m.sigma
        return float(stats.kurtosis(r.ravel()))

    assert kurt(jumpy) > 10 * max(kurt(calm), 1.0)


def test_bars_are_consistent_and_chain_open_to_previous_close() -> None:
    market = SyntheticMarket(SyntheticConfig(n_symbols=500, seed=6))
    steps = list(market.bars(50))
    for prev, cur in itertools.pairwise(steps):
        np.testing.assert_array_equal(cur["open"], prev["close"])
        assert (cur["ts_ms"] - prev["ts_ms"] == 60_000).all()
    allb = {k: np.concatenate([s[k] for s in steps]) for k in steps[0]}
    assert (allb["high"] >= np.maximum(allb["open"], allb["close"])).all()
    assert (allb["low"] <= np.minimum(allb["open"], allb["close"])).all()
    assert (allb["volume"] >= 1).all()


def test_quotes_bracket_the_trade_price() -> None:
    t = _ticks(SyntheticConfig(n_symbols=100, seed=7, quotes=True), 50_000)
    assert (t["bid"] < t["ask"]).all()
    assert ((t["price"] == t["bid"]) | (t["price"] == t["ask"])).all()
    spread_bps = (t["ask"] - t["bid"]) / t["price"] * 1e4
    assert 0 < np.median(spread_bps) < 20


def _check_defects(rows: dict[str, np.ndarray], price: str, crossed: tuple[str, str]) -> None:
    d = rows["defect"]
    prev_ts = np.r_[rows["ts_ms"][0], rows["ts_ms"][:-1]]
    lo, hi = crossed
    checks = {
        Defect.NAN_PRICE: np.isnan(rows[price]),
        Defect.NEGATIVE_VOLUME: rows["volume"] < 0,
        Defect.OUT_OF_ORDER: rows["ts_ms"] < prev_ts,
        Defect.HIGH_LOW: rows[lo] > rows[hi],
    }
    for kind, seen in checks.items():
        np.testing.assert_array_equal(seen, d == kind, err_msg=kind.name)
    dup = np.flatnonzero(d == Defect.DUPLICATE)
    assert len(dup) > 0
    for key, values in rows.items():
        if key != "defect":
            np.testing.assert_array_equal(values[dup], values[dup - 1], err_msg=key)


def test_injected_tick_defects_are_labelled_truthfully() -> None:
    cfg = SyntheticConfig(n_symbols=100, seed=8, quotes=True, bad_rate=0.05)
    t = _ticks(cfg, 200_000)
    share = (t["defect"] != Defect.CLEAN).mean()
    assert 0.04 < share < 0.05  # rate × (1 − rate): never two bad records in a row
    assert set(np.unique(t["defect"])) == set(range(6))
    _check_defects(t, "price", ("bid", "ask"))


def test_injected_bar_defects_and_chosen_kinds_only() -> None:
    cfg = SyntheticConfig(n_symbols=500, seed=9, bad_rate=0.03)
    b = next(SyntheticMarket(cfg).bars(100, steps_per_batch=100))
    _check_defects(b, "close", ("low", "high"))
    only = SyntheticConfig(n_symbols=50, seed=9, bad_rate=0.1, defects=(Defect.NAN_PRICE,))
    t = _ticks(only, 20_000)
    assert set(np.unique(t["defect"])) == {Defect.CLEAN, Defect.NAN_PRICE}
    no_quotes = _ticks(SyntheticConfig(n_symbols=50, seed=9, bad_rate=0.1), 20_000)
    assert Defect.HIGH_LOW not in set(np.unique(no_quotes["defect"]))


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="bad_rate"):
        SyntheticConfig(bad_rate=0.7)
    with pytest.raises(ValueError, match="positive"):
        SyntheticConfig(n_symbols=0)
