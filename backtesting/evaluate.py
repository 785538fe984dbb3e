"""Evaluate model predictions against bars: every (model version × strategy) side by side.

Timing convention (no look-ahead), see also :mod:`finance.strategies`:

* A prediction stamped ``ts`` for a symbol acts at the close of that symbol's first bar with
  ``ts_ms >= ts`` (the bar itself when the stamps are equal). The position it sets earns the
  close-to-close return from that bar to the symbol's **next** bar, ``close[t+1] / close[t] - 1``,
  and is rebalanced at every bar; the forecast ``horizon`` does not change the holding period.
* The signal's IC, accuracy and AUC compare it with what it forecasts: the return over its
  ``horizon`` bars, ``close[t+h] / close[t] - 1``, measured per timestamp across symbols.
* When several predictions of one model version map to the same bar, the latest one wins.

Everything is computed by :mod:`finance.strategies` (positions, costs, limits, P&L) and
:mod:`finance.metrics` (every figure); this module only aligns, loops and collects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtesting import baselines as bl
from backtesting.config import BacktestConfig, SignStrategy, StrategySpec, ThresholdStrategy
from finance import metrics as mx
from finance.strategies import (
    BacktestError,
    BacktestResult,
    backtest,
    sign_positions,
    threshold_positions,
    to_wide,
    top_bottom_k_positions,
)

REQUIRED_COLUMNS = ("symbol", "ts", "model_name", "model_version", "prob_up")
IDENT_COLUMNS = ("model_name", "model_version", "role", "strategy", "kind")
EXTRA_METRICS = (
    "gross_total_return", "total_cost", "net_exposure", "ann_return_vs_buy_and_hold",
    "sharpe_vs_buy_and_hold",
)  # fmt: skip
_EPOCH = pd.Timestamp(0, tz="UTC")
CONVENTION = (
    "A prediction stamped ts acts at the close of its symbol's first bar with ts_ms >= ts and "
    "earns the close-to-close return to that symbol's next bar (rebalanced every bar); IC, "
    "accuracy and AUC use the return over the prediction's horizon."
)


@dataclass(frozen=True)
class RunResult:
    """One (model version or baseline × strategy) backtest and its figures."""

    key: str
    model_name: str
    model_version: str
    role: str
    strategy: str
    kind: str  # "model", "baseline" or "benchmark"
    result: BacktestResult
    metrics: dict[str, float]
    contributions: pd.Series  # per symbol, additive, net of costs; sums to sum(returns)
    rolling_sharpe: pd.Series
    drawdown: pd.Series

    @property
    def equity(self) -> pd.Series:
        """Compounded equity, starting at 1 before the first period."""
        return (1.0 + self.result.returns).cumprod().rename("equity")


@dataclass(frozen=True)
class BacktestReport:
    """Every run, the signal quality of each model version over time, and provenance."""

    config: BacktestConfig
    runs: dict[str, RunResult]
    ic: dict[str, pd.DataFrame]  # "name@version" -> per-timestamp ``ic``, ``rank_ic``
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per run (index: run key): identity columns, then every metric."""
        rows = {
            k: {**{c: getattr(r, c) for c in IDENT_COLUMNS}, **r.metrics}
            for k, r in self.runs.items()
        }
        return pd.DataFrame.from_dict(rows, orient="index")

    def runs_of(self, model_name: str, model_version: str) -> list[RunResult]:
        """The runs of one model version (one per strategy)."""
        return [
            r
            for r in self.runs.values()
            if r.model_name == model_name and r.model_version == model_version
        ]


# --------------------------------------------------------------------------- inputs


def _to_ms(col: pd.Series, what: str) -> np.ndarray:
    """Epoch milliseconds from datetimes (naive = UTC) or numbers already in ms."""
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
        if ts.isna().any():
            raise BacktestError("bad_timestamp", f"{what} has missing timestamps")
        return np.asarray((ts - _EPOCH) // pd.Timedelta(milliseconds=1), dtype="int64")
    num = pd.to_numeric(col, errors="coerce")
    if num.isna().any() or not np.isfinite(num.to_numpy(dtype=float)).all():
        raise BacktestError("bad_timestamp", f"{what} has non-numeric or missing timestamps")
    return num.to_numpy(dtype="int64")


def prepare_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Validated ``symbol, ts_ms, close, ret_next`` sorted by ``(symbol, ts_ms)``.

    ``ret_next`` is ``close[next bar] / close - 1`` within the symbol (nan on its last bar).
    """
    missing = {"symbol", "ts_ms", "close"} - set(bars.columns)
    if missing:
        raise BacktestError("missing_columns", f"bars lack columns {sorted(missing)}")
    b = pd.DataFrame(
        {
            "symbol": bars["symbol"].reset_index(drop=True).astype(str),
            "ts_ms": _to_ms(bars["ts_ms"], "bars"),
            "close": pd.to_numeric(bars["close"], errors="coerce").to_numpy(dtype=float),
        }
    )
    if b.duplicated(["symbol", "ts_ms"]).any():
        raise BacktestError("duplicate_bars", "bars have duplicate (symbol, ts_ms) rows")
    if not (np.isfinite(b["close"]) & (b["close"] > 0)).all():
        raise BacktestError("bad_close", "every close must be finite and positive")
    b = b.sort_values(["symbol", "ts_ms"], kind="stable").reset_index(drop=True)
    b["ret_next"] = b.groupby("symbol", sort=False)["close"].shift(-1) / b["close"] - 1.0
    return b


def _forward(bars: pd.DataFrame, horizon: int) -> pd.Series:
    """``close[t+h] / close[t] - 1`` per symbol, indexed by ``(symbol, ts_ms)``."""
    fwd = bars.groupby("symbol", sort=False)["close"].shift(-horizon) / bars["close"] - 1.0
    return pd.Series(fwd.to_numpy(), index=pd.MultiIndex.from_frame(bars[["symbol", "ts_ms"]]))


def align_predictions(
    predictions: pd.DataFrame, bars: pd.DataFrame, config: BacktestConfig
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Map predictions onto bars (``bar_ts``) with the realised ``realized`` forward return.

    ``bars`` comes from :func:`prepare_bars`. Returns the aligned rows and the number of rows
    dropped per reason (``bad_prob_up``, ``unknown_symbol``, ``after_last_bar``,
    ``superseded``, ``outside_window``, ``not_selected``).
    """
    missing = set(REQUIRED_COLUMNS) - set(predictions.columns)
    if missing:
        raise BacktestError("missing_columns", f"predictions lack columns {sorted(missing)}")
    predictions = predictions.reset_index(drop=True)
    p = pd.DataFrame(
        {
            "symbol": predictions["symbol"].astype(str),
            "ts": _to_ms(predictions["ts"], "predictions"),
            "model_name": predictions["model_name"].astype(str),
            "model_version": predictions["model_version"].astype(str),
            "role": predictions.get("role", pd.Series("", index=predictions.index)).astype(str),
            "prob_up": pd.to_numeric(predictions["prob_up"], errors="coerce").to_numpy(float),
            "expected_return": pd.to_numeric(
                predictions.get("expected_return", np.nan), errors="coerce"
            ),
            "horizon": pd.to_numeric(predictions.get("horizon", 1), errors="coerce"),
        }
    )
    dropped: dict[str, int] = {}

    def keep(mask: pd.Series | np.ndarray, reason: str) -> None:
        nonlocal p
        ok = np.asarray(mask, dtype=bool)
        dropped[reason] = int((~ok).sum())
        p = p[ok]

    keep(np.isfinite(p["prob_up"]) & p["prob_up"].between(0.0, 1.0), "bad_prob_up")
    p["horizon"] = p["horizon"].fillna(1).clip(lower=1).astype("int64")
    window = np.ones(len(p), dtype=bool)
    if config.start is not None:
        window &= p["ts"].to_numpy() >= _to_ms(pd.Series([config.start]), "start")[0]
    if config.end is not None:
        window &= p["ts"].to_numpy() < _to_ms(pd.Series([config.end]), "end")[0]
    keep(window, "outside_window")
    if config.models:
        keep(
            [
                any(ref.matches(n, v) for ref in config.models)
                for n, v in zip(p["model_name"], p["model_version"], strict=True)
            ],
            "not_selected",
        )
    keep(p["symbol"].isin(set(bars["symbol"])), "unknown_symbol")
    right = bars[["symbol", "ts_ms"]].rename(columns={"ts_ms": "bar_ts"}).sort_values("bar_ts")
    p = pd.merge_asof(
        p.sort_values("ts", kind="stable"),
        right,
        left_on="ts",
        right_on="bar_ts",
        by="symbol",
        direction="forward",
    )
    keep(p["bar_ts"].notna(), "after_last_bar")
    p["bar_ts"] = p["bar_ts"].astype("int64")
    before = len(p)
    p = p.drop_duplicates(["model_name", "model_version", "symbol", "bar_ts"], keep="last")
    dropped["superseded"] = before - len(p)
    p = p.reset_index(drop=True)
    p["realized"] = np.nan
    for h in sorted(p["horizon"].unique()):
        rows = p["horizon"] == h
        idx = pd.MultiIndex.from_arrays([p.loc[rows, "symbol"], p.loc[rows, "bar_ts"]])
        p.loc[rows, "realized"] = _forward(bars, int(h)).reindex(idx).to_numpy()
    return p, dropped


# --------------------------------------------------------------------------- runs


def strategy_positions(
    spec: StrategySpec, scores: pd.DataFrame, prob_up: pd.DataFrame, signal: str
) -> pd.DataFrame:
    """Target weights of one configured strategy (wide, timestamps × symbols)."""
    if isinstance(spec, SignStrategy):
        center = 0.5 if signal == "prob_up" else 0.0
        return sign_positions(scores, center=center, long_only=spec.long_only)
    if isinstance(spec, ThresholdStrategy):
        return threshold_positions(prob_up, upper=spec.p_hi, lower=spec.p_lo)
    return top_bottom_k_positions(scores, spec.k, long_only=spec.long_only)


def symbol_contributions(
    result: BacktestResult, asset_returns: pd.DataFrame, cost_bps: float, slippage_bps: float
) -> pd.Series:
    """Per-symbol additive P&L ``sum_t w·ret − cost · sum_t |Δw|``, largest first."""
    w = result.positions
    ret = asset_returns.reindex(index=w.index, columns=w.columns).astype(float)
    ret = ret.where(np.isfinite(ret), 0.0).fillna(0.0)
    trades = w.diff().abs()
    if len(w):
        trades.iloc[0] = w.iloc[0].abs()
    contrib = (w * ret).sum() - trades.sum() * (cost_bps + slippage_bps) / 1e4
    return contrib.sort_values(ascending=False, kind="stable").rename("contribution")


def _run(
    ident: tuple[str, str, str, str, str],
    positions: pd.DataFrame,
    market: pd.DataFrame,
    config: BacktestConfig,
    quality: dict[str, float],
    classify: tuple[np.ndarray, np.ndarray] | None,
) -> RunResult:
    res = backtest(
        positions,
        market,
        cost_bps=config.cost_bps,
        slippage_bps=config.slippage_bps,
        max_position=config.max_position,
        max_gross=config.max_gross,
    )
    y_true, y_prob = classify if classify is not None else (None, None)
    m = mx.summary(
        res.returns,
        positions=res.positions,
        y_true=y_true,
        y_prob=y_prob,
        periods_per_year=config.periods_per_year,
    )
    m.update(quality)
    m["gross_total_return"] = mx.total_return(res.gross_returns)
    m["total_cost"] = float(res.costs.sum())
    m["net_exposure"] = float(res.net_exposure.mean()) if len(res.net_exposure) else mx.NAN
    name, version, role, strategy, kind = ident
    key = bl.BUY_AND_HOLD if kind == "benchmark" else f"{name}@{version}/{strategy}"
    return RunResult(
        key=key,
        model_name=name,
        model_version=version,
        role=role,
        strategy=strategy,
        kind=kind,
        result=res,
        metrics=m,
        contributions=symbol_contributions(res, market, config.cost_bps, config.slippage_bps),
        rolling_sharpe=mx.rolling_sharpe(
            res.returns, config.rolling_window, config.periods_per_year
        ),
        drawdown=pd.Series(mx.drawdown_series(res.returns.to_numpy()), index=res.returns.index),
    )


def _signal_quality(frame: pd.DataFrame, signal: str) -> tuple[dict[str, float], pd.DataFrame]:
    """IC and rank IC of the signal against its horizon return, per bar timestamp."""
    out: dict[str, float] = {}
    per: dict[str, pd.Series] = {}
    for prefix, method in (("ic", "pearson"), ("rank_ic", "spearman")):
        ic = mx.information_coefficient(
            frame[signal], frame["realized"], frame["bar_ts"], method=method
        )
        out.update(
            {
                f"{prefix}_mean": ic.mean,
                f"{prefix}_std": ic.std,
                f"{prefix}_t": ic.t_stat,
                f"{prefix}_p": ic.p_value,
                f"{prefix}_n": float(ic.n_periods),
            }
        )
        per[prefix] = ic.per_period
    series = pd.DataFrame({"ic": per["ic"], "rank_ic": per["rank_ic"]}).sort_index()
    series.index = series.index.astype("int64")
    series.index.name = "ts_ms"
    return out, series


def _model_runs(
    frame: pd.DataFrame, kind: str, market: pd.DataFrame, config: BacktestConfig
) -> tuple[list[RunResult], dict[str, pd.DataFrame]]:
    runs: list[RunResult] = []
    ics: dict[str, pd.DataFrame] = {}
    for (name, version), sub in frame.groupby(["model_name", "model_version"], sort=True):
        role = "/".join(sorted(set(sub["role"]) - {""}))
        quality, ics[f"{name}@{version}"] = _signal_quality(sub, config.signal)
        classify = (sub["realized"].to_numpy(float), sub["prob_up"].to_numpy(float))
        grid = sub[sub["bar_ts"].isin(market.index)]
        scores = to_wide(grid, config.signal, index="bar_ts")
        prob = to_wide(grid, "prob_up", index="bar_ts")
        scores = scores.reindex(index=market.index, columns=market.columns)
        prob = prob.reindex(index=market.index, columns=market.columns)
        for spec in config.strategies:
            pos = strategy_positions(spec, scores, prob, config.signal)
            ident = (str(name), str(version), role, spec.label, kind)
            runs.append(_run(ident, pos, market, config, quality, classify))
    return runs, ics


def _versus(runs: Iterable[RunResult], bench: RunResult) -> None:
    for r in runs:
        r.metrics["ann_return_vs_buy_and_hold"] = (
            r.metrics["annualized_return"] - bench.metrics["annualized_return"]
        )
        r.metrics["sharpe_vs_buy_and_hold"] = r.metrics["sharpe"] - bench.metrics["sharpe"]


def evaluate(
    predictions: pd.DataFrame, bars: pd.DataFrame, config: BacktestConfig | None = None
) -> BacktestReport:
    """Backtest every selected model version with every configured strategy.

    ``predictions`` has ``symbol, ts, model_name, model_version, prob_up`` and optionally
    ``role, expected_return, horizon`` (``ts`` in epoch ms or datetimes); ``bars`` has
    ``symbol, ts_ms, close``. The universe is the predicted symbols, the timeline every bar
    from the first to the last predicted one that has a next bar. Buy-and-hold (equal weight)
    and, when configured, the naive baselines run on the same universe and timeline.
    """
    cfg = config or BacktestConfig()
    b = prepare_bars(bars)
    aligned, dropped = align_predictions(predictions, b, cfg)
    given = set(
        zip(
            predictions["model_name"].astype(str),
            predictions["model_version"].astype(str),
            strict=True,
        )
    )
    present = set(zip(aligned["model_name"], aligned["model_version"], strict=True))
    for ref in cfg.models:
        label = ref.name + (f":{ref.version}" if ref.version else "")
        if not any(ref.matches(n, v) for n, v in given):
            raise BacktestError("unknown_model", f"no prediction of {label}")
        if not any(ref.matches(n, v) for n, v in present):
            raise BacktestError("no_predictions", f"no usable prediction of {label} ({dropped})")
    if aligned.empty:
        raise BacktestError("no_predictions", f"no usable prediction left (dropped: {dropped})")
    universe = sorted(aligned["symbol"].unique())
    first, last = int(aligned["bar_ts"].min()), int(aligned["bar_ts"].max())
    ub = b[b["symbol"].isin(universe) & b["ts_ms"].between(first, last)]
    market = to_wide(ub, "ret_next").reindex(columns=universe).dropna(how="all")
    if market.empty:
        raise BacktestError("no_periods", "no predicted bar has a next bar to earn a return")
    bench = _run(
        (bl.BUY_AND_HOLD, bl.BASELINE_VERSION, bl.BASELINE_ROLE, "equal_weight", "benchmark"),
        bl.buy_and_hold_positions(market),
        market,
        cfg,
        {},
        None,
    )
    model_runs, ics = _model_runs(aligned, "model", market, cfg)
    base_runs: list[RunResult] = []
    if cfg.baselines:
        naive = bl.naive_predictions(b[b["symbol"].isin(universe)])
        naive_aligned, _ = align_predictions(naive, b, cfg.model_copy(update={"models": []}))
        naive_aligned = naive_aligned[naive_aligned["bar_ts"].between(first, last)]
        base_runs, base_ics = _model_runs(naive_aligned, "baseline", market, cfg)
        ics.update(base_ics)
    _versus([bench, *model_runs, *base_runs], bench)
    runs = {r.key: r for r in (bench, *model_runs, *base_runs)}
    meta = {
        "n_predictions": len(predictions),
        "n_aligned": len(aligned),
        "dropped": dropped,
        "n_symbols": len(universe),
        "n_periods": len(market),
        "first_ts_ms": int(market.index[0]),
        "last_ts_ms": int(market.index[-1]),
        "models": sorted(f"{n}@{v}" for n, v in present),
        "metric_names": list(bench.metrics),
    }
    return BacktestReport(config=cfg, runs=runs, ic=ics, meta=meta)
