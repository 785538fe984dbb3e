"""backtesting.evaluate: every figure against an independent computation, and no look-ahead.

The references here are written differently from finance.metrics/strategies: P&L from a
wide pandas pivot and a loop over timestamps, ratios with ``statistics``/pandas, tail risk with
``scipy.stats.norm`` integrals, IC with ``scipy.stats.pearsonr``/``spearmanr`` and
``ttest_1samp``, AUC with Mann-Whitney U, Wilson intervals with statsmodels.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss
from statsmodels.stats.proportion import proportion_confint

from backtesting.baselines import previous_return_sign
from backtesting.config import BacktestConfig
from backtesting.evaluate import BacktestReport, RunResult, evaluate
from finance.strategies import BacktestError
from tickcast.errors import ConfigError

DAY = 86_400_000
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
PPY = 252.0
STRATEGIES = [
    {"kind": "sign"},
    {"kind": "threshold", "p_hi": 0.55, "p_lo": 0.45},
    {"kind": "top_bottom_k", "k": 2},
]


def make_bars(n: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for j, sym in enumerate(SYMBOLS):
        close = 50.0 * np.exp(np.cumsum(rng.normal(0.0005 * j, 0.02, n)))
        rows += [{"symbol": sym, "ts_ms": (i + 1) * DAY, "close": c} for i, c in enumerate(close)]
    return pd.DataFrame(rows)


def wide_close(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.pivot_table(index="ts_ms", columns="symbol", values="close")


def next_ret(bars: pd.DataFrame) -> pd.DataFrame:
    """close[t+1] / close[t] - 1 in wide form, every symbol trading every bar."""
    close = wide_close(bars)
    return close.shift(-1) / close - 1.0


def random_predictions(bars: pd.DataFrame, seed: int = 5, version: str = "1") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ret = next_ret(bars).stack().rename("r").reset_index()
    prob = np.clip(0.5 + 4.0 * ret["r"].fillna(0) + rng.normal(0, 0.12, len(ret)), 0.01, 0.99)
    return pd.DataFrame(
        {
            "symbol": ret["symbol"],
            "ts": ret["ts_ms"],
            "model_name": "m",
            "model_version": version,
            "role": "CHALLENGER",
            "prob_up": prob,
            "expected_return": rng.normal(0, 0.01, len(ret)) + 0.5 * ret["r"].fillna(0),
            "horizon": 1,
        }
    )


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture(scope="module")
def preds(bars: pd.DataFrame) -> pd.DataFrame:
    return random_predictions(bars)


@pytest.fixture(scope="module")
def report(bars: pd.DataFrame, preds: pd.DataFrame) -> BacktestReport:
    cfg = BacktestConfig.model_validate(
        {"strategies": STRATEGIES, "cost_bps": 4, "slippage_bps": 1, "rolling_window": 10}
    )
    return evaluate(preds, bars, cfg)


# --------------------------------------------------------------------------- references


def ref_pnl(weights: pd.DataFrame, ret: pd.DataFrame, bps: float) -> pd.Series:
    """Loop over timestamps: sum_j w·r minus bps × |Δw| starting flat."""
    out, prev = [], pd.Series(0.0, index=weights.columns)
    for ts, w in weights.iterrows():
        r = ret.loc[ts].fillna(0.0)
        out.append(float((w * r).sum() - bps / 1e4 * (w - prev).abs().sum()))
        prev = w
    return pd.Series(out, index=weights.index)


def ref_metrics(run: RunResult, frame: pd.DataFrame | None, bh: RunResult) -> dict[str, float]:
    """Every metric of a run, computed independently from its returns and positions."""
    r = run.result.returns.astype(float)
    w = run.result.positions
    n = len(r)
    total = float(np.exp(np.log1p(r).sum()) - 1.0)
    ann = float(np.exp(np.log1p(r).mean() * PPY) - 1.0)
    sd = statistics.stdev(r)
    eq = pd.concat([pd.Series([1.0]), (1 + r).cumprod().reset_index(drop=True)])
    under = (eq < eq.cummax() - 1e-15).iloc[1:].reset_index(drop=True)
    runs = under.groupby((~under).cumsum()).sum()
    mdd = float(-(eq / eq.cummax() - 1.0).min())
    gains, losses = r[r > 0].sum(), -r[r < 0].sum()
    dw = w.diff()
    dw.iloc[0] = w.iloc[0]
    out = {
        "n_periods": float(n),
        "total_return": total,
        "annualized_return": ann,
        "volatility": sd * math.sqrt(PPY),
        "sharpe": statistics.mean(r) / sd * math.sqrt(PPY),
        "sortino": r.mean() / math.sqrt((r.clip(upper=0) ** 2).sum() / n) * math.sqrt(PPY),
        "calmar": ann / mdd if mdd > 0 else math.nan,
        "max_drawdown": mdd,
        "max_drawdown_duration": float(runs.max()),
        "profit_factor": gains / losses if losses > 0 else math.nan,
        "hit_rate": float((r[r != 0] > 0).mean()),
        "turnover": float(dw.abs().sum(axis=1).mean()),
        "exposure": float(w.abs().sum(axis=1).mean()),
        "time_in_market": float((w.abs().sum(axis=1) > 0).mean()),
        "gross_total_return": float((1 + run.result.gross_returns).prod() - 1),
        "total_cost": float(dw.abs().sum(axis=1).sum() * 5 / 1e4),
        "net_exposure": float(w.sum(axis=1).mean()),
    }
    mu = r.mean()
    for level in (95, 99):
        a = 1 - level / 100
        q = r.quantile(a)
        dist = stats.norm(loc=mu, scale=sd)
        out[f"var_hist_{level}"] = -q
        out[f"cvar_hist_{level}"] = -r[r <= q].mean()
        out[f"var_gauss_{level}"] = -dist.ppf(a)
        out[f"cvar_gauss_{level}"] = -dist.expect(lambda x: x, ub=dist.ppf(a), conditional=True)
    out["ann_return_vs_buy_and_hold"] = ann - bh.metrics["annualized_return"]
    out["sharpe_vs_buy_and_hold"] = out["sharpe"] - bh.metrics["sharpe"]
    nan_keys = ["auc", "log_loss", "brier", "accuracy", "accuracy_lower", "accuracy_upper"]
    out.update(dict.fromkeys(nan_keys, math.nan))
    out["n_predictions"] = 0.0
    for prefix in ("ic", "rank_ic"):
        out.update({f"{prefix}_{k}": math.nan for k in ("mean", "std", "t", "p")})
        out[f"{prefix}_n"] = 0.0
    if frame is None:
        return out
    f = frame.dropna(subset=["realized"])
    up = (f["realized"] > 0).astype(int)
    hits = int(((f["prob_up"] > 0.5) == (f["realized"] > 0)).sum())
    lo, hi = proportion_confint(hits, len(f), alpha=0.05, method="wilson")
    u = stats.mannwhitneyu(f.loc[up == 1, "prob_up"], f.loc[up == 0, "prob_up"]).statistic
    out.update(
        auc=u / (up.sum() * (len(f) - up.sum())),
        log_loss=sk_log_loss(up, f["prob_up"]),
        brier=brier_score_loss(up, f["prob_up"]),
        accuracy=hits / len(f),
        accuracy_lower=lo,
        accuracy_upper=hi,
        n_predictions=float(len(f)),
    )
    for prefix, corr in (("ic", stats.pearsonr), ("rank_ic", stats.spearmanr)):
        per = np.array([corr(g["prob_up"], g["realized"])[0] for _, g in f.groupby("ts")])
        tt = stats.ttest_1samp(per, 0.0)
        out.update(
            {
                f"{prefix}_mean": per.mean(),
                f"{prefix}_std": per.std(ddof=1),
                f"{prefix}_t": tt.statistic,
                f"{prefix}_p": tt.pvalue,
                f"{prefix}_n": float(per.size),
            }
        )
    return out


def assert_metrics(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == set(expected), set(actual) ^ set(expected)
    for key, value in expected.items():
        got = actual[key]
        if math.isnan(value):
            assert math.isnan(got), key
        else:
            assert got == pytest.approx(value, rel=1e-7, abs=1e-10), key


# --------------------------------------------------------------------------- tests


def test_sign_returns_follow_the_next_bar_convention(report: BacktestReport, bars, preds) -> None:
    ret = next_ret(bars).iloc[:-1]  # the last bar has no next bar: not a period
    prob = preds.pivot(index="ts", columns="symbol", values="prob_up").loc[ret.index]
    weights = np.sign(prob - 0.5) / prob.notna().sum(axis=1).to_numpy()[:, None]
    expected = ref_pnl(weights, ret, bps=5)
    run = report.runs["m@1/sign"]
    np.testing.assert_allclose(run.result.returns.to_numpy(), expected.to_numpy(), atol=1e-15)
    assert list(run.result.returns.index) == list(ret.index)


def test_every_metric_of_every_run_matches_an_independent_formula(
    report: BacktestReport, bars, preds
) -> None:
    bh = report.runs["buy_and_hold"]
    frame = preds.assign(
        realized=next_ret(bars)
        .stack()
        .reindex(pd.MultiIndex.from_arrays([preds["ts"], preds["symbol"]]))
        .to_numpy()
    )
    for key, run in report.runs.items():
        if run.kind == "model":
            assert_metrics(run.metrics, ref_metrics(run, frame, bh))
        elif run.kind == "benchmark":
            assert_metrics(run.metrics, ref_metrics(run, None, bh))
        assert run.metrics["n_periods"] == len(bars["ts_ms"].unique()) - 1, key
    assert report.runs["m@1/sign"].metrics["ic_mean"] > 0.2  # the planted signal is seen


def test_buy_and_hold_is_the_equal_weight_mean(bars, preds) -> None:
    rep = evaluate(preds, bars, BacktestConfig(baselines=False))
    mean = next_ret(bars).iloc[:-1].mean(axis=1)
    got = rep.runs["buy_and_hold"].result.returns
    pd.testing.assert_series_equal(got, mean, check_names=False, check_index_type=False)
    assert set(rep.runs) == {"buy_and_hold", "m@1/sign"}


def test_top_bottom_k_selects_the_right_symbols(report: BacktestReport, preds) -> None:
    pos = report.runs["m@1/top2_bottom2"].result.positions
    prob = preds.pivot(index="ts", columns="symbol", values="prob_up")
    for ts, row in pos.iterrows():
        ranked = prob.loc[ts].sort_values()
        assert set(row[row > 0].index) == set(ranked.index[-2:])
        assert set(row[row < 0].index) == set(ranked.index[:2])
        np.testing.assert_allclose(row[row != 0].abs(), 0.25)


def test_costs_reduce_returns_by_exactly_turnover_times_bps(bars, preds) -> None:
    free = evaluate(preds, bars, BacktestConfig.model_validate({"strategies": STRATEGIES}))
    paid = evaluate(
        preds,
        bars,
        BacktestConfig.model_validate({"strategies": STRATEGIES, "cost_bps": 7, "slippage_bps": 3}),
    )
    for key, run in paid.runs.items():
        gap = free.runs[key].result.returns - run.result.returns
        np.testing.assert_allclose(gap, run.result.turnover * 10 / 1e4, rtol=1e-12, atol=1e-16)
        assert run.metrics["total_cost"] == pytest.approx(run.result.turnover.sum() * 1e-3)


def test_contributions_add_up_and_rolling_sharpe_is_windowed(report: BacktestReport) -> None:
    for run in report.runs.values():
        assert run.contributions.sum() == pytest.approx(run.result.returns.sum(), abs=1e-12)
        r = run.result.returns
        assert run.rolling_sharpe.iloc[:9].isna().all()
        window = r.iloc[5:15]
        ref = window.mean() / statistics.stdev(window) * math.sqrt(PPY)
        assert run.rolling_sharpe.iloc[14] == pytest.approx(ref)


def test_shifting_predictions_one_bar_into_the_future_destroys_a_planted_signal(bars) -> None:
    ret = next_ret(bars).stack().rename("r").reset_index()
    oracle = pd.DataFrame(
        {
            "symbol": ret["symbol"],
            "ts": ret["ts_ms"],
            "model_name": "oracle",
            "model_version": "1",
            "prob_up": np.where(ret["r"] > 0, 0.9, 0.1),
        }
    )
    cfg = BacktestConfig(baselines=False)
    true = evaluate(oracle, bars, cfg).runs["oracle@1/sign"]
    late = evaluate(oracle.assign(ts=oracle["ts"] + DAY), bars, cfg).runs["oracle@1/sign"]
    # a stamp 1 ms after bar t is acted on at bar t+1, exactly like the one-bar shift
    nudged = evaluate(oracle.assign(ts=oracle["ts"] + 1), bars, cfg).runs["oracle@1/sign"]
    # perfect foresight is not flagged: its metrics are simply what they compute to
    np.testing.assert_allclose(true.result.returns, next_ret(bars).abs().mean(axis=1).iloc[:-1])
    assert true.metrics["hit_rate"] == 1.0
    assert true.metrics["max_drawdown"] == 0.0
    assert math.isnan(true.metrics["profit_factor"])
    assert true.metrics["sharpe"] > 10
    assert late.metrics["sharpe"] < 3 < true.metrics["sharpe"] / 5
    assert late.metrics["total_return"] < true.metrics["total_return"]
    assert abs(late.metrics["ic_mean"]) < 0.2 < true.metrics["ic_mean"]
    np.testing.assert_allclose(
        nudged.result.returns.to_numpy(), late.result.returns.reindex(nudged.result.returns.index)
    )


def test_naive_baselines_use_only_the_past(report: BacktestReport, bars) -> None:
    close = wide_close(bars)
    prev = close / close.shift(1) - 1.0
    pos = report.runs["prev_return_sign@baseline/sign"].result.positions
    expected = np.sign(prev).loc[pos.index] / len(SYMBOLS)
    np.testing.assert_allclose(pos.to_numpy(), expected.fillna(0.0).to_numpy())
    up = report.runs["always_up@baseline/sign"]
    bh = report.runs["buy_and_hold"]
    np.testing.assert_allclose(up.result.gross_returns, bh.result.gross_returns, atol=1e-15)
    assert previous_return_sign(bars)["prob_up"].isin([0.0, 0.5, 1.0]).all()


def test_bad_input_gives_typed_errors_and_counts_drops(bars, preds) -> None:
    with pytest.raises(BacktestError) as err:
        evaluate(preds.drop(columns=["prob_up"]), bars)
    assert err.value.reason == "missing_columns"
    with pytest.raises(BacktestError) as err:
        evaluate(preds, bars, BacktestConfig.model_validate({"models": ["m:9"]}))
    assert err.value.reason == "unknown_model"
    with pytest.raises(BacktestError) as err:
        evaluate(preds, pd.concat([bars, bars.head(1)]))
    assert err.value.reason == "duplicate_bars"
    messy = pd.concat(
        [
            preds,
            preds.head(3).assign(prob_up=[np.nan, 1.5, -0.1]),
            preds.head(2).assign(symbol="ZZZ"),
            preds.tail(1).assign(ts=10**15),
        ]
    )
    rep = evaluate(messy, bars, BacktestConfig(baselines=False))
    assert rep.meta["dropped"] == {
        "bad_prob_up": 3, "outside_window": 0, "unknown_symbol": 2, "after_last_bar": 1,
        "superseded": 0,
    }  # fmt: skip


def test_datetimes_duplicates_and_version_selection(bars, preds) -> None:
    base = evaluate(preds, bars, BacktestConfig(baselines=False)).runs["m@1/sign"]
    as_dt = preds.assign(ts=pd.to_datetime(preds["ts"], unit="ms", utc=True))
    dt = evaluate(as_dt, bars, BacktestConfig(baselines=False)).runs["m@1/sign"]
    pd.testing.assert_series_equal(base.result.returns, dt.result.returns)
    # an earlier-stamped, contradicting duplicate of the same bar is superseded by the later one
    stale = preds.assign(ts=preds["ts"] - 1, prob_up=1 - preds["prob_up"])
    both = pd.concat([preds, stale, random_predictions(bars, seed=9, version="2")])
    cfg = BacktestConfig.model_validate({"models": ["m:1"], "baselines": False})
    rep = evaluate(both, bars, cfg)
    assert rep.meta["models"] == ["m@1"]
    assert rep.meta["dropped"]["superseded"] == len(preds)
    assert rep.meta["dropped"]["not_selected"] == len(preds)
    pd.testing.assert_series_equal(rep.runs["m@1/sign"].result.returns, base.result.returns)


def test_config_from_yaml_and_json(tmp_path) -> None:
    yml = tmp_path / "bt.yaml"
    yml.write_text(
        "models: ['xgb:7', {name: lgbm, version: 3}, rf]\n"
        "strategies:\n  - {kind: sign, long_only: true}\n  - {kind: top_bottom_k, k: 3}\n"
        "cost_bps: 5\nmax_gross: 1.5\nperiods_per_year: 98280\n"
    )
    cfg = BacktestConfig.from_file(yml)
    assert [(m.name, m.version) for m in cfg.models] == [("xgb", "7"), ("lgbm", "3"), ("rf", None)]
    assert [s.label for s in cfg.strategies] == ["long_on_sign", "top3_bottom3"]
    js = tmp_path / "bt.json"
    js.write_text(BacktestConfig(cost_bps=2).model_dump_json())
    assert BacktestConfig.from_file(js).cost_bps == 2
    bad = [
        {"strategies": [{"kind": "threshold", "p_hi": 0.4, "p_lo": 0.6}]},
        {"strategies": [{"kind": "sign"}, {"kind": "sign"}]},
        {"cost_bps": -1},
        {"strategies": [{"kind": "magic"}]},
    ]
    for data in bad:
        with pytest.raises(ConfigError):
            BacktestConfig.from_mapping(data)
    (tmp_path / "broken.yaml").write_text("strategies: [")
    with pytest.raises(ConfigError):
        BacktestConfig.from_file(tmp_path / "broken.yaml")
