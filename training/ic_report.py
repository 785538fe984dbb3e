"""The IC table: Qlib's signal and portfolio figures per model and feature set, out of sample.

For each named feature set and model, :func:`run_ic_table` fits the model walk-forward (the
splitter and purging of :mod:`training.walk_forward`, one fit per fold and seed) and scores
every out-of-sample row; :func:`score_quality` turns those scores into Qlib's columns
(:mod:`finance.cross_section`: IC, ICIR, Rank IC, Rank ICIR, annualised return, information
ratio and max drawdown of a top-k long–short book net of costs). Every figure is then the
mean ± std over the seeds. Naive baselines score the same rows: yesterday's return
(1-day momentum), the 20-day return (momentum) and a seeded random score (what no skill
looks like on these dates).

The score is the classifier's P(up) for horizon ``h``; the IC is taken against that
``h``-bar forward return, the portfolio earns the next bar's return (positions after the
close of ``t``). Qlib's label differs: ``Ref($close, -2) / Ref($close, -1) - 1`` (it trades
at the next close); its portfolio is long only against the CSI300 index, ours dollar neutral.

The canaries prove the table could show a leak: :func:`shuffled` permutes the outcomes
across rows (every IC must fall to the noise bound of :func:`null_ic_bound`),
:func:`peeking` hands each row the features of the row ``lead`` bars later (the target
period is then in the features, and the IC jumps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finance.cross_section import long_short_topk, risk_analysis, signal_quality
from finance.strategies import to_wide
from indicators import compute_frame
from indicators.feature_sets import feature_set, union_of
from training.dataset import Dataset, build_dataset
from training.point_in_time import keyed
from training.splits import Fold
from training.walk_forward import WalkForwardConfig, fit_model

#: Qlib's published LightGBM row on Alpha158, CSI300 (examples/benchmarks/README.md of
#: microsoft/qlib; test period 2017-01-01..2020-08-01, China A shares, long-only top 50
#: dropout 5 against the index, costs 5 bps buy / 15 bps sell).
QLIB_CSI300_LIGHTGBM: dict[str, float] = {
    "ic": 0.0448, "icir": 0.3660, "rank_ic": 0.0469, "rank_icir": 0.3877,
    "annualized_return": 0.0901, "information_ratio": 1.0164, "max_drawdown": -0.1038,
}  # fmt: skip
COLUMNS = ("ic", "icir", "rank_ic", "rank_icir", "annualized_return", "information_ratio",
           "max_drawdown")  # fmt: skip
BASELINES = ("momentum_1d", "momentum_20d", "random")
KEEP = ["symbol", "ts_ms", "fwd_return", "ret_next"]


@dataclass(frozen=True)
class ICConfig:
    """What the IC table evaluates (recorded in its JSON)."""

    feature_sets: tuple[str, ...] = ("classic", "alpha158", "classic+alpha158")
    models: tuple[str, ...] = ("lightgbm", "xgboost")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    horizon: int = 1
    n_splits: int = 5
    topk: int = 50
    """Names per leg (Qlib's topk=50)."""
    n_drop: int | None = 5
    """Names swapped per leg and date at most (Qlib's n_drop=5); None rebuys the top k."""
    cost_bps: float = 10.0
    """Per unit of turnover: Qlib's 5 bps to buy and 15 bps to sell average 10 bps."""
    n_estimators: int | None = None
    """Trees per booster (None: the models' defaults, 100)."""
    periods_per_year: float = 252.0

    def walk_forward(self, model: str, seed: int) -> WalkForwardConfig:
        """The walk-forward configuration of one model and seed."""
        params = {model: {"n_estimators": self.n_estimators}} if self.n_estimators else {}
        return WalkForwardConfig(
            horizon=self.horizon, n_splits=self.n_splits, models=(model,),
            model_params=params, seed=seed, drop_incomplete=False,
        )  # fmt: skip


@dataclass
class ICRow:
    """One row of the table: per-seed figures and their mean ± std."""

    feature_set: str
    model: str
    runs: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, column: str) -> float:
        """Mean over the runs (nan-aware)."""
        values = [r[column] for r in self.runs if math.isfinite(r.get(column, math.nan))]
        return float(np.mean(values)) if values else math.nan

    def std(self, column: str) -> float:
        """Sample std over the runs (ddof=1; 0 with one run)."""
        values = [r[column] for r in self.runs if math.isfinite(r.get(column, math.nan))]
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: means, stds and the runs."""
        cols = [*COLUMNS, "turnover", "n_dates"]
        return {
            "feature_set": self.feature_set, "model": self.model, "seconds": self.seconds,
            "mean": {c: _finite(self.mean(c)) for c in cols},
            "std": {c: _finite(self.std(c)) for c in cols},
            "runs": [{k: _finite(v) for k, v in r.items()} for r in self.runs],
        }  # fmt: skip


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def folds_of(dataset: Dataset, config: WalkForwardConfig) -> list[Fold]:
    """The walk-forward folds (split on timestamps, purged by label end)."""
    frame = dataset.frame
    return list(config.splitter().split(frame["ts_ms"].to_numpy(), frame["label_end_ts"]))


def oos_scores(dataset: Dataset, model: str, config: WalkForwardConfig) -> pd.DataFrame:
    """``symbol, ts_ms, fwd_return, ret_next, score``: P(up) of every out-of-sample row."""
    parts = []
    for fold in folds_of(dataset, config):
        fitted = fit_model(dataset, model, config, fold.train_idx)
        test = dataset.frame.iloc[fold.test_idx]
        parts.append(test[KEEP].assign(score=fitted.predict_proba(test[dataset.feature_names])))
    return pd.concat(parts, ignore_index=True)


def baseline_scores(
    dataset: Dataset, rows: np.ndarray, kind: str, seed: int = 0, bars: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A naive score of the given rows: ``momentum_1d``, ``momentum_20d`` (needs ``bars``)
    or ``random`` (standard normal, seeded)."""
    test = dataset.frame.iloc[rows]
    if kind == "momentum_1d":
        score = test["_prev_ret_1"].to_numpy(dtype=float)
    elif kind == "momentum_20d":
        if bars is None:
            raise ValueError("momentum_20d needs the bars")
        b = bars.sort_values(["symbol", "ts_ms"])
        mom = b["close"] / b.groupby("symbol")["close"].shift(20) - 1.0
        keyed = pd.DataFrame({"symbol": b["symbol"], "ts_ms": b["ts_ms"], "score": mom})
        score = test[["symbol", "ts_ms"]].merge(keyed, how="left")["score"].to_numpy(dtype=float)
    elif kind == "random":
        score = np.random.default_rng(seed).standard_normal(len(test))
    else:
        raise ValueError(f"unknown baseline {kind!r}; known: {BASELINES}")
    return test[KEEP].assign(score=score).reset_index(drop=True)


def score_quality(preds: pd.DataFrame, config: ICConfig) -> dict[str, float]:
    """Qlib's columns for one set of out-of-sample scores (``symbol, ts_ms, score,
    fwd_return, ret_next``)."""
    quality = signal_quality(preds["score"], preds["fwd_return"], preds["ts_ms"])
    book = long_short_topk(
        to_wide(preds, "score"), to_wide(preds, "ret_next"),
        config.topk, config.n_drop, config.cost_bps,
    )  # fmt: skip
    risk = risk_analysis(book.returns, config.periods_per_year)
    return {
        **quality.to_dict(),
        "annualized_return": risk["annualized_return"],
        "information_ratio": risk["information_ratio"],
        "max_drawdown": risk["max_drawdown"],
        "turnover": float(book.turnover.iloc[1:].mean()) if len(book.turnover) > 1 else math.nan,
    }


def null_ic_bound(n_names: float, n_dates: int, sigmas: float = 4.0) -> float:
    """``sigmas`` standard errors of a mean IC with no signal: per date the IC of independent
    variables has std ``1 / sqrt(n - 1)``, so the mean of ``d`` independent dates has
    ``1 / sqrt(d (n - 1))``."""
    return sigmas / math.sqrt(n_dates * max(n_names - 1.0, 1.0))


def shuffled(dataset: Dataset, seed: int = 0) -> Dataset:
    """The outcomes (``fwd_return, label, direction, ret_next``) permuted across all rows;
    timestamps, label ends (purging) and features stay."""
    frame = dataset.frame.copy()
    cols = ["fwd_return", "label", "direction", "ret_next"]
    perm = np.random.default_rng(seed).permutation(len(frame))
    frame[cols] = frame[cols].to_numpy()[perm]
    return Dataset(frame, dataset.feature_names, dataset.feature_set_version + "-shuffled")


def peeking(dataset: Dataset, lead: int = 1) -> Dataset:
    """Each row's features replaced by its symbol's features ``lead`` bars later (a leak:
    those features contain the close that the ``h``-bar label is made of)."""
    frame = dataset.frame.sort_values(["symbol", "ts_ms"], kind="stable")
    names = dataset.feature_names
    frame[names] = frame.groupby("symbol", sort=False)[names].shift(-lead)
    frame = frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)
    return Dataset(frame, names, dataset.feature_set_version + "-peeking")


def build_datasets(
    bars: pd.DataFrame, names: Iterable[str], horizon: int = 1
) -> dict[str, Dataset]:
    """The dataset of each named feature set, from one feature frame of their union (every
    column is computed independently, so a set's columns equal its own computation)."""
    wanted = list(names)
    features = keyed(compute_frame(bars, feature_set(union_of(wanted))))
    out = {}
    for name in wanted:
        fs = feature_set(name)
        out[name] = build_dataset(
            bars, features, list(fs.names), horizon, drop_incomplete=False, version=fs.version
        )
    return out


def run_ic_table(
    datasets: dict[str, Dataset],
    config: ICConfig,
    bars: pd.DataFrame | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> list[ICRow]:
    """Every (feature set, model) row over the seeds, then the baselines on the same rows.

    ``datasets`` maps a feature-set name to its dataset (the same bars and labels, so the
    folds and out-of-sample rows are the same for every row of the table).
    """
    rows: list[ICRow] = []
    for set_name, dataset in datasets.items():
        for model in config.models:
            row = ICRow(set_name, model)
            began = time.perf_counter()
            for seed in config.seeds:
                step(f"{set_name} / {model} / seed {seed}")
                preds = oos_scores(dataset, model, config.walk_forward(model, seed))
                row.runs.append({"seed": float(seed), **score_quality(preds, config)})
            row.seconds = time.perf_counter() - began
            rows.append(row)
    first = next(iter(datasets.values()))
    test_rows = np.concatenate(
        [f.test_idx for f in folds_of(first, config.walk_forward("zero_return", 0))]
    )
    for kind in BASELINES:
        row = ICRow("—", kind)
        for seed in config.seeds if kind == "random" else config.seeds[:1]:
            preds = baseline_scores(first, test_rows, kind, seed, bars)
            row.runs.append({"seed": float(seed), **score_quality(preds, config)})
        rows.append(row)
    return rows


def _cell(row: ICRow, column: str) -> str:
    mean, std = row.mean(column), row.std(column)
    if not math.isfinite(mean):
        return "–"
    if column in ("annualized_return", "max_drawdown"):
        return f"{mean:+.1%} ± {std:.1%}"
    return f"{mean:+.4f} ± {std:.4f}"


def to_markdown(rows: Iterable[ICRow], qlib: dict[str, float] = QLIB_CSI300_LIGHTGBM) -> str:
    """The table in Qlib's layout, with Qlib's CSI300 LightGBM row last."""
    head = ("| model | features | seeds | IC | ICIR | Rank IC | Rank ICIR | ann. return "
            "| IR | max DD | turnover |")  # fmt: skip
    lines = [head, "|" + " --- |" * 11]
    for row in rows:
        cells = [_cell(row, c) for c in COLUMNS]
        turn = row.mean("turnover")
        lines.append(
            f"| {row.model} | {row.feature_set} | {len(row.runs)} | " + " | ".join(cells)
            + f" | {turn:.2f} |"
        )  # fmt: skip
    q = qlib
    lines.append(
        f"| *Qlib LightGBM (CSI300, 2017–2020)* | Alpha158 | 20 | {q['ic']:+.4f} | "
        f"{q['icir']:+.4f} | {q['rank_ic']:+.4f} | {q['rank_icir']:+.4f} | "
        f"{q['annualized_return']:+.1%} | {q['information_ratio']:+.4f} | "
        f"{q['max_drawdown']:+.1%} | – |"
    )
    return "\n".join(lines)


def to_json(rows: Iterable[ICRow], config: ICConfig, facts: dict[str, Any]) -> dict[str, Any]:
    """Every figure, the configuration and the run's facts."""
    cfg = asdict(config)
    return {"config": cfg, "facts": facts, "qlib_csi300_lightgbm": QLIB_CSI300_LIGHTGBM,
            "rows": [r.to_dict() for r in rows]}  # fmt: skip
