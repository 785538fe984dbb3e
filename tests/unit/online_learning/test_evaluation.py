"""Online evaluation against numpy/scipy over the same window; gauges; bounds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from online_learning.evaluation import DAY_MS, OnlineEvaluator
from tests.unit.online_learning.helpers import paired_outcomes
from tickcast.metrics import Metrics

PPY = 252 * 390


def test_window_metrics_match_references() -> None:
    outcomes = list(paired_outcomes(0, 700, 0.8, 0.2, cost_bps=1.0))
    ev = OnlineEvaluator(window=250, periods_per_year=PPY)
    assert ev.update(outcomes) == 1400
    snap = ev.snapshot()
    assert set(snap) == {"champ:1", "river-logreg:online-10"}
    models = {"champ:1": ("champ", "1"), "river-logreg:online-10": ("river-logreg", "online-10")}
    for key, (name, version) in models.items():
        frame = pd.DataFrame([o for o in outcomes if o["model_name"] == name]).tail(250)
        row = snap[key]
        assert (row["model"], row["version"], row["n"], row["n_total"]) == (name, version, 250, 700)
        assert row["accuracy"] == pytest.approx(frame["hit"].mean())
        assert row["log_loss"] == pytest.approx(frame["loss"].mean())
        ic = stats.spearmanr(frame["prob_up"] - 0.5, frame["realized_return"]).statistic
        assert row["ic"] == pytest.approx(ic)
        simple = np.expm1(frame["strategy_return"].to_numpy())
        sharpe = simple.mean() / simple.std(ddof=1) * math.sqrt(PPY)
        assert row["sharpe"] == pytest.approx(sharpe)
        equity = np.cumprod(1 + simple)
        peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
        assert row["max_drawdown"] == pytest.approx(max((1 - equity / peak).max(), 0.0))
        assert row["var_95"] == pytest.approx(-np.quantile(simple, 0.05))
    assert snap["champ:1"]["accuracy"] > snap["river-logreg:online-10"]["accuracy"]


def test_daily_pnl_follows_event_time_days() -> None:
    ev = OnlineEvaluator(window=10, notional_usd=1000.0)
    base = {"model_name": "m", "model_version": "1", "role": "CHAMPION", "hit": True,
            "loss": 0.5, "prob_up": 0.6, "realized_return": 0.01, "horizon": 1}  # fmt: skip
    day0, day1 = 5 * DAY_MS, 6 * DAY_MS
    ev.update([base | {"ts": day0, "realized_ts": day0 + 1, "strategy_return": 0.01}] * 2)
    assert ev.snapshot()["m:1"]["daily_pnl_usd"] == pytest.approx(2 * 1000 * math.expm1(0.01))
    ev.update([base | {"ts": day1, "realized_ts": day1 + 5, "strategy_return": -0.02}])
    assert ev.snapshot()["m:1"]["daily_pnl_usd"] == pytest.approx(1000 * math.expm1(-0.02))
    ev.update([base | {"ts": day0, "realized_ts": day0 + 9, "strategy_return": 0.5}])  # late
    assert ev.snapshot()["m:1"]["daily_pnl_usd"] == pytest.approx(1000 * math.expm1(-0.02))


def test_bounded_windows_age_and_models() -> None:
    ev = OnlineEvaluator(window=50, max_age_ms=60_000 * 20, max_models=2)
    for version in ("1", "2", "3"):
        outcomes = paired_outcomes(1, 400, 0.5, 0.5)
        for o in outcomes:
            o["model_version"] = f"{o['model_version']}-{version}"
        ev.update(outcomes)
    assert len(ev.models) == 2
    assert all(len(w.hits) <= 50 for w in ev.models.values())
    ev2 = OnlineEvaluator(window=1000, max_age_ms=60_000 * 20)
    ev2.update(paired_outcomes(1, 400, 0.5, 0.5, symbols=1))
    win = next(iter(ev2.models.values()))
    assert len(win.hits) == 21
    assert win.ts[-1] - win.ts[0] == 60_000 * 20


def test_export_sets_gauges_and_removes_evicted_series() -> None:
    metrics = Metrics(process=False)
    ev = OnlineEvaluator(window=100, max_models=1)
    ev.update([o for o in paired_outcomes(2, 200, 0.8, 0.2) if o["role"] == "CHAMPION"])
    ev.export(metrics)
    row = ev.snapshot()["champ:1"]
    assert metrics.value("model_accuracy", model_version="champ:1") == row["accuracy"]
    assert metrics.value("tickcast_model_log_loss", model="champ", version="1") == row["log_loss"]
    assert metrics.value("portfolio_sharpe_ratio", model="champ") == row["sharpe"]
    assert metrics.value("portfolio_max_drawdown", model="champ") == row["max_drawdown"]
    assert metrics.value("daily_pnl_usd", model="champ") == row["daily_pnl_usd"]
    later = [o for o in paired_outcomes(3, 50, 0.8, 0.2) if o["role"] == "CHALLENGER"]
    for o in later:
        o["realized_ts"] += 10 * DAY_MS
    ev.update(later)
    ev.export(metrics)
    assert metrics.value("model_accuracy", model_version="champ:1") is None
    assert metrics.value("model_accuracy", model_version="river-logreg:online-10") is not None


def test_non_finite_outcomes_are_skipped() -> None:
    ev = OnlineEvaluator(window=10)
    bad = paired_outcomes(4, 3, 0.5, 0.5)[:3]
    bad[0]["loss"] = float("nan")
    assert ev.update(bad) == 2


def test_annualisation_follows_the_bar_spacing() -> None:
    from online_learning.evaluation import OnlineEvaluator

    def outcome(ts: int, bar_ms: int, horizon: int = 1) -> dict[str, object]:
        return {"model_name": "m", "model_version": "1", "role": "CHAMPION", "symbol": "A",
                "ts": ts, "realized_ts": ts + horizon * bar_ms, "horizon": horizon,
                "prob_up": 0.6, "realized_return": 0.01, "hit": True, "loss": 0.5,
                "strategy_return": 0.01}  # fmt: skip

    daily, minute = OnlineEvaluator(), OnlineEvaluator()
    daily.update([outcome(i * 86_400_000, 86_400_000, horizon=1 + i % 5) for i in range(50)])
    minute.update([outcome(i * 60_000, 60_000) for i in range(50)])
    assert daily.annualisation() == 252.0
    assert minute.annualisation() == 252 * 390
    assert OnlineEvaluator(periods_per_year=12.0).annualisation() == 12.0


def test_a_checkpoint_from_before_bar_spacing_restores_and_updates() -> None:
    import pickle

    outcomes = list(paired_outcomes(2, 300, 0.6, 0.4))
    old = OnlineEvaluator()
    old.update(outcomes[:200])
    del old._bar_ms  # what an evaluator pickled before the bar-spacing inference looked like
    restored = pickle.loads(pickle.dumps(old))
    assert restored.update(outcomes[200:]) == len(outcomes) - 200  # AttributeError before
    reference = OnlineEvaluator()
    reference.update(outcomes[200:])
    assert restored.annualisation() == reference.annualisation()
