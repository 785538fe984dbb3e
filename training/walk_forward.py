"""Walk-forward evaluation of every candidate model, with honest costs and baselines.

:func:`run_walk_forward` is the entry point the CLI calls: compute features with the one
indicator implementation, refuse look-ahead (:func:`~training.point_in_time.check_point_in_time`),
label, split walk-forward with purging, fit each model per fold, and score its out-of-sample
P(up) with the forecast metrics and with the implied long/short strategy (sign of
``P(up) - 0.5``, equal weight across symbols, next-bar returns, net of costs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from finance.metrics import directional_accuracy, summary, total_return
from finance.strategies import BacktestResult, backtest, sign_positions, to_wide
from training.dataset import (
    Dataset,
    FeatureComputer,
    build_dataset,
    default_computer,
    feature_names_of,
)
from training.labels import validate_bars
from training.models import (
    ALL_MODELS,
    CHAMPIONS,
    ENSEMBLES,
    NAIVE,
    TORCH_AND_TIME_SERIES,
    Model,
    make_model,
)
from training.point_in_time import PointInTimeReport, check_point_in_time, keyed
from training.splits import FoldInfo, WalkForwardSplitter

CANDIDATES = CHAMPIONS + TORCH_AND_TIME_SERIES + ENSEMBLES
"""Models that can be registered (the rest are baselines in the report; a ``*_tuned`` model
is a candidate too)."""


def is_candidate(name: str) -> bool:
    """Whether ``name`` is registrable rather than a baseline of the report."""
    return name in CANDIDATES or name.endswith("_tuned")


@dataclass(frozen=True)
class WalkForwardConfig:
    """Everything a walk-forward run depends on (recorded in the report)."""

    horizon: int = 1
    n_splits: int = 5
    test_size: int | None = None
    window: Literal["expanding", "rolling"] = "expanding"
    train_size: int | None = None
    min_train_size: int | None = None
    gap: int = 0
    embargo: int = 0
    models: tuple[str, ...] = ALL_MODELS
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost_bps: float = 1.0
    slippage_bps: float = 0.0
    max_position: float | None = None
    max_gross: float | None = None
    periods_per_year: float = 252.0
    confidence: float = 0.95
    seed: int = 0
    drop_incomplete: bool = True
    check_point_in_time: bool = True
    pit_cutoffs: int = 4

    def splitter(self) -> WalkForwardSplitter:
        """The splitter this configuration describes."""
        return WalkForwardSplitter(
            n_splits=self.n_splits,
            test_size=self.test_size,
            window=self.window,
            train_size=self.train_size,
            min_train_size=self.min_train_size,
            gap=self.gap,
            embargo=self.embargo,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["models"] = list(self.models)
        return out


@dataclass
class WalkForwardResult:
    """Out-of-sample results of every model over every fold."""

    config: WalkForwardConfig
    feature_names: list[str]
    feature_set_version: str
    folds: list[FoldInfo]
    fold_metrics: pd.DataFrame
    aggregate: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    strategy_returns: dict[str, pd.Series]
    point_in_time: PointInTimeReport | None = None
    model_details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per model, per fold: what a tuned model's study or a stack's fit did (``fit_summary``)."""

    def table(self) -> pd.DataFrame:
        """One row per model: pooled out-of-sample metrics and the edge over naive baselines."""
        table = pd.DataFrame.from_dict(self.aggregate, orient="index")
        table.index.name = "model"
        table["is_baseline"] = [not is_candidate(m) for m in table.index]
        naive = [m for m in table.index if m in NAIVE]
        for metric in ("accuracy", "sharpe", "auc"):
            best = table.loc[naive, metric].max() if naive else float("nan")
            table[f"{metric}_vs_best_naive"] = table[metric] - best
        return table

    def fold_table(self) -> pd.DataFrame:
        """One row per (model, fold)."""
        return self.fold_metrics.copy()

    def best_model(self, metric: str = "accuracy", among: tuple[str, ...] | None = None) -> str:
        """The model with the highest pooled ``metric`` (lower is better for losses)."""
        table = self.table()
        if among:
            table = table.loc[[m for m in table.index if m in among]]
        col = table[metric].astype(float)
        lower_better = metric in {"log_loss", "brier", "max_drawdown", "volatility"}
        return str(col.idxmin() if lower_better else col.idxmax())

    def to_dict(self) -> dict[str, Any]:
        """Every figure of the run, JSON-ready (NaN becomes None)."""
        return _jsonable(
            {
                "config": self.config.to_dict(),
                "feature_names": self.feature_names,
                "feature_set_version": self.feature_set_version,
                "folds": [f.to_dict() for f in self.folds],
                "aggregate": self.aggregate,
                "fold_metrics": self.fold_metrics.to_dict(orient="records"),
                "strategy_returns": {
                    m: {"ts_ms": [int(i) for i in s.index], "net_return": s.tolist()}
                    for m, s in self.strategy_returns.items()
                },
                "point_in_time": self.point_in_time.to_dict() if self.point_in_time else None,
                "model_details": self.model_details,
            }
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def evaluate_predictions(
    preds: pd.DataFrame, config: WalkForwardConfig
) -> tuple[dict[str, float], BacktestResult]:
    """Metrics of out-of-sample predictions (``symbol, ts_ms, p_up, label, fwd_return,
    ret_next``) and of their long/short strategy."""
    prob = to_wide(preds, "p_up")
    bt = backtest(
        sign_positions(prob, center=0.5),
        to_wide(preds, "ret_next"),
        cost_bps=config.cost_bps,
        slippage_bps=config.slippage_bps,
        max_position=config.max_position,
        max_gross=config.max_gross,
    )
    metrics = summary(
        bt.returns,
        positions=bt.positions,
        y_true=preds["label"].to_numpy(),
        y_prob=preds["p_up"].to_numpy(),
        realized=preds["fwd_return"].to_numpy(),
        period=preds["ts_ms"].to_numpy(),
        periods_per_year=config.periods_per_year,
        confidence=config.confidence,
    )
    metrics["gross_total_return"] = total_return(bt.gross_returns)
    metrics["total_cost"] = float(bt.costs.sum())
    metrics["up_rate"] = float(preds["label"].mean()) if len(preds) else float("nan")
    metrics["predicted_up_rate"] = float((preds["p_up"] > 0.5).mean()) if len(preds) else math.nan
    return metrics, bt


def _columns_for(model: Model, dataset: Dataset) -> list[str]:
    """The model's columns; a sequence model (LSTM, ARIMA) also gets its ``sequence_keys``."""
    columns = dataset.feature_names if model.columns is None else list(model.columns)
    return [*getattr(model, "sequence_keys", ()), *columns]


def fit_model(dataset: Dataset, name: str, config: WalkForwardConfig, rows: Any = None) -> Model:
    """Fit model ``name`` on ``rows`` of the dataset (all rows by default)."""
    model = make_model(name, config.seed, config.model_params.get(name))
    frame = dataset.frame if rows is None else dataset.frame.iloc[rows]
    return model.fit(frame[_columns_for(model, dataset)], frame["label"].to_numpy())


def evaluate(dataset: Dataset, config: WalkForwardConfig | None = None) -> WalkForwardResult:
    """Walk-forward over an already built :class:`Dataset`."""
    config = config or WalkForwardConfig()
    frame = dataset.frame
    folds = list(config.splitter().split(frame["ts_ms"].to_numpy(), frame["label_end_ts"]))
    keep = ["symbol", "ts_ms", "label", "fwd_return", "ret_next"]
    rows: list[dict[str, Any]] = []
    all_preds: list[pd.DataFrame] = []
    aggregate: dict[str, dict[str, float]] = {}
    strategy: dict[str, pd.Series] = {}
    details: dict[str, list[dict[str, Any]]] = {}
    for name in config.models:
        parts = []
        for fold in folds:
            model = fit_model(dataset, name, config, fold.train_idx)
            fit_summary = getattr(model, "fit_summary", None)
            if callable(fit_summary):  # training.tuning / training.stacking
                details.setdefault(name, []).append({"fold": fold.info.fold, **fit_summary()})
            test = frame.iloc[fold.test_idx]
            p_up = model.predict_proba(test[_columns_for(model, dataset)])
            pred = test[keep].assign(p_up=p_up, model=name, fold=fold.info.fold)
            metrics, _bt = evaluate_predictions(pred, config)
            rows.append({"model": name, "fold": fold.info.fold, **metrics})
            parts.append(pred)
        pooled = pd.concat(parts, ignore_index=True)
        metrics, bt = evaluate_predictions(pooled, config)
        fold_acc = [r["accuracy"] for r in rows if r["model"] == name]
        metrics["fold_accuracy_mean"] = float(np.nanmean(fold_acc)) if fold_acc else math.nan
        metrics["fold_accuracy_std"] = (
            float(np.nanstd(fold_acc, ddof=1)) if len(fold_acc) > 1 else math.nan
        )
        metrics["n_folds"] = float(len(folds))
        aggregate[name] = metrics
        strategy[name] = bt.returns
        all_preds.append(pooled)
    return WalkForwardResult(
        config=config,
        feature_names=list(dataset.feature_names),
        feature_set_version=dataset.feature_set_version,
        folds=[f.info for f in folds],
        fold_metrics=pd.DataFrame(rows),
        aggregate=aggregate,
        predictions=pd.concat(all_preds, ignore_index=True) if all_preds else pd.DataFrame(),
        strategy_returns=strategy,
        model_details=details,
    )


def run_walk_forward(
    bars_df: pd.DataFrame,
    feature_set: Any,
    config: WalkForwardConfig | None = None,
    *,
    compute: FeatureComputer | None = None,
) -> WalkForwardResult:
    """Features → point-in-time guard → labels → walk-forward evaluation of every model.

    ``compute(bars, feature_set)`` defaults to ``indicators.compute_frame``. Raises
    :class:`~training.errors.LookAheadError` when a feature peeks ahead and
    :class:`~training.errors.TrainingError` / ``SplitError`` for unusable input.
    """
    config = config or WalkForwardConfig()
    validate_bars(bars_df)
    computer = compute or default_computer()
    features = keyed(computer(bars_df, feature_set))
    names = feature_names_of(feature_set, features)
    report = None
    if config.check_point_in_time:
        report = check_point_in_time(
            features,
            bars_df,
            lambda b: computer(b, feature_set),
            feature_names=names,
            n_cutoffs=config.pit_cutoffs,
        )
    dataset = build_dataset(
        bars_df,
        features,
        names,
        config.horizon,
        drop_incomplete=config.drop_incomplete,
        version=str(getattr(feature_set, "version", "")),
    )
    result = evaluate(dataset, config)
    result.point_in_time = report
    return result


def directional_summary(result: WalkForwardResult, model: str) -> tuple[float, float, float]:
    """Pooled out-of-sample accuracy of ``model`` with its Wilson interval."""
    preds = result.predictions[result.predictions["model"] == model]
    acc = directional_accuracy(preds["label"], preds["p_up"] - 0.5, result.config.confidence)
    return acc.accuracy, acc.lower, acc.upper
