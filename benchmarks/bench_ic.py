"""The IC table of docs/models.md: Qlib's quality figures of each model and feature set.

On the packaged S&P 500 daily bars (524 symbols, 2009-08-21..2010-08-20, every bar: the
walk-forward folds are the out-of-sample test), :func:`training.ic_report.run_ic_table`
evaluates LightGBM and XGBoost on ``classic``, ``alpha158`` and ``classic+alpha158`` over
the seeds, beside the naive baselines, then runs the two canaries on ``alpha158`` with
LightGBM (seed 0): shuffled outcomes (the IC must fall within the noise bound) and peeking
features (those of the next bar: the IC must jump). Features are computed once, for the
union set, and each set reads its own columns (every column is computed independently).

Writes ``ic_table.md`` and ``ic_table.json`` into ``--out`` (``reports/ic``), prints the
markdown table, then one JSON line (the rows' means and stds, the canaries, timings) last.

    .venv/bin/python benchmarks/bench_ic.py [--seeds 5] [--symbols 0] [--n-estimators 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from devtools.datasets import load_sp500_daily
from training.ic_report import (
    ICConfig,
    ICRow,
    build_datasets,
    folds_of,
    null_ic_bound,
    oos_scores,
    peeking,
    run_ic_table,
    score_quality,
    shuffled,
    to_json,
    to_markdown,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=0, help="first N symbols; 0 = all")
    parser.add_argument("--n-estimators", type=int, default=None)
    parser.add_argument("--sets", default="classic,alpha158,classic+alpha158")
    parser.add_argument("--models", default="lightgbm,xgboost")
    parser.add_argument("--topk", type=int, default=50)
    parser.add_argument("--n-drop", type=int, default=5)
    parser.add_argument("--cost-bps", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("reports/ic"))
    args = parser.parse_args()

    began = time.perf_counter()
    bars = load_sp500_daily()
    if args.symbols:
        keep = sorted(bars["symbol"].unique())[: args.symbols]
        bars = bars[bars["symbol"].isin(keep)].reset_index(drop=True)
    config = ICConfig(
        feature_sets=tuple(args.sets.split(",")), models=tuple(args.models.split(",")),
        seeds=tuple(range(args.seeds)), topk=args.topk, n_drop=args.n_drop or None,
        cost_bps=args.cost_bps, n_estimators=args.n_estimators,
    )  # fmt: skip
    t0 = time.perf_counter()
    datasets = build_datasets(bars, (*config.feature_sets, "alpha158"), config.horizon)
    features_s = time.perf_counter() - t0
    alpha = datasets["alpha158"]
    datasets = {name: datasets[name] for name in config.feature_sets}
    t0 = time.perf_counter()
    rows = run_ic_table(datasets, config, bars, step=lambda s: print(s, flush=True))
    table_s = time.perf_counter() - t0

    # canaries on alpha158, LightGBM, seed 0
    t0 = time.perf_counter()
    canaries: dict[str, Any] = {}
    for label, ds in (("shuffled", shuffled(alpha, 0)), ("peeking", peeking(alpha, 1))):
        preds = oos_scores(ds, "lightgbm", config.walk_forward("lightgbm", 0))
        canary = ICRow("alpha158", f"lightgbm, {label} canary")
        canary.runs.append({"seed": 0.0, **score_quality(preds, config)})
        rows.append(canary)
        canaries[label] = canary.to_dict()["mean"]
    n_dates = len(np.unique(alpha.frame.iloc[
        np.concatenate([f.test_idx for f in folds_of(alpha, config.walk_forward("lightgbm", 0))])
    ]["ts_ms"]))  # fmt: skip
    canaries["null_ic_bound_4sd"] = null_ic_bound(bars["symbol"].nunique(), n_dates)
    canaries_s = time.perf_counter() - t0

    facts = {
        "symbols": int(bars["symbol"].nunique()), "bars": len(bars),
        "dates": int(bars["ts_ms"].nunique()), "oos_dates": n_dates,
        "features_s": round(features_s, 1), "table_s": round(table_s, 1),
        "canaries_s": round(canaries_s, 1), "total_s": round(time.perf_counter() - began, 1),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }  # fmt: skip
    markdown = to_markdown(rows)
    result = to_json(rows, config, facts)
    result["canaries"] = canaries
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ic_table.md").write_text(markdown + "\n", encoding="utf-8")
    (args.out / "ic_table.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(markdown)
    summary = {
        "facts": facts, "canaries": canaries,
        "rows": [{k: r.to_dict()[k] for k in ("feature_set", "model", "mean", "std")}
                 for r in rows],
    }  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
