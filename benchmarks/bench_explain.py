"""The cost of explanations and the random forest's scoring path, through the in-stream scorer.

Trains XGBoost, LightGBM and the random forest (``--trees`` each, on the 41 default
features of synthetic random-walk bars, as ``bench_scoring.py`` does) and the MLP and LSTM
(torch in its own interpreter, ``--epochs`` 2; their explanations are integrated gradients
in numpy, :mod:`training.integrated_gradients`, ``m`` = 32 steps), then:

* **explanations**: :meth:`agents.scoring.Scorer.score_batch` from feature records to
  prediction dicts with the model as champion, ``explain_top_k`` = ``--top-k`` on every row
  (on), with ``explain_budget`` = ``--budget`` (budget; ``explained_share`` = the rows it
  explained in a steady-state batch) and 0 (off), in alternating runs (``--rounds`` of each,
  the best kept) at each ``--batch``; ``ratio`` = on / off (the target is ≥ 0.5);
* **random forest**: scikit-learn's ``predict_proba`` (the pipeline, ``n_jobs=1``) against
  the forest translated to an XGBoost booster (:mod:`training.forest_xgboost`, what the
  registry scores), rows/s at batch 1 and 1,000, with the largest difference on the data.

XGBoost boosters (the forest's too) run one thread, as in the worker
(``TICKCAST_SCORING_THREADS``). LightGBM is scored through ``lleaves`` (compiled into a
temporary directory, as the registry does); its explanation is LightGBM's own
``pred_contrib``. Prints one line per case and, last, one JSON object.

    .venv/bin/python benchmarks/bench_explain.py [--rows 200000] [--batch 1000] [--top-k 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.predictions import limit_threads
from agents.scoring import ModelSet, Scorer
from devtools.synthetic.bars import random_walk_panel
from indicators import FeatureSet, compute_frame
from training.champion import PackagedModel, ScoringModel
from training.compiled_trees import cache_dir
from training.labels import make_labels
from training.models import make_model

KINDS = ("xgboost", "lightgbm", "random_forest", "mlp", "lstm")
NEURAL = ("mlp", "lstm")


def _frame(fs: FeatureSet) -> pd.DataFrame:
    panel = random_walk_panel(tuple(f"S{i:03d}" for i in range(100)), n=400, seed=7)
    labels = make_labels(panel, 1)
    feats = compute_frame(panel, fs)
    return feats.merge(labels[["symbol", "ts_ms", "label"]], on=["symbol", "ts_ms"])


def _scorer_rps(scorer: Scorer, records: list[Any], rows: int, batch: int) -> float:
    done, start = 0, time.perf_counter()
    while done < rows:
        lo = done % len(records)
        n = min(batch, rows - done, len(records) - lo)
        scorer.score_batch(records[lo : lo + n], 0)
        done += n
    return rows / (time.perf_counter() - start)


def _calls_rps(call: Any, pool: np.ndarray, batch: int, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        lo = done % (len(pool) - batch)
        call(pool[lo : lo + batch])
        done += batch
    return done / (time.perf_counter() - start)


def _explain_cases(
    model: PackagedModel, kind: str, records: list[Any], args: argparse.Namespace
) -> dict[str, Any]:
    champion = ScoringModel.from_packaged(model, name=kind, version=1, role="champion")
    limit_threads(ModelSet(champion), 1)  # as the worker scores (TICKCAST_SCORING_THREADS)
    fsv = model.feature_set_version
    scorers = {
        "on": Scorer(ModelSet(champion), fsv, args.top_k),
        "budget": Scorer(ModelSet(champion), fsv, args.top_k, explain_budget=args.budget),
        "off": Scorer(ModelSet(champion), fsv, 0),
    }
    out: dict[str, Any] = {}
    for batch in args.batch or [1_000]:
        best = {"on": 0.0, "budget": 0.0, "off": 0.0}
        for _ in range(args.rounds):  # alternating: load changes hit all alike
            for mode in ("off", "on", "budget"):
                rows = args.rows if mode != "on" else max(batch, args.rows // 10)
                best[mode] = max(best[mode], _scorer_rps(scorers[mode], records, rows, batch))
        preds = scorers["budget"].score_batch(records[:batch], 0).predictions
        share = sum("explanation_features" in p for p in preds) / len(preds)
        out[str(batch)] = {
            "off_rows_per_s": round(best["off"]),
            "on_rows_per_s": round(best["on"]),
            "ratio": round(best["on"] / best["off"], 3),
            "budget_rows_per_s": round(best["budget"]),
            "budget_ratio": round(best["budget"] / best["off"], 3),
            "budget_explained_share": round(share, 4),
            "meets_target_on": best["on"] / best["off"] >= 0.5,
            "meets_target_budget": best["budget"] / best["off"] >= 0.5,
        }
        print(
            f"{kind:<13} batch {batch:>6} [{model.scoring_path}]: explain off "
            f"{best['off']:>9,.0f} rows/s, every row {best['on']:>9,.0f} "
            f"({best['on'] / best['off']:.2f}), budget {args.budget:g} {best['budget']:>9,.0f} "
            f"({best['budget'] / best['off']:.2f}, {share:.1%} of rows explained)"
        )
    return out


def _forest_cases(model: PackagedModel, pool: np.ndarray, seconds: float) -> dict[str, Any]:
    pipeline = model.model.estimator
    pipeline.steps[-1][1].set_params(n_jobs=1)  # one core, as the worker scores
    out: dict[str, Any] = {}
    for batch in (1, 1_000):
        sk = _calls_rps(pipeline.predict_proba, pool, batch, seconds)
        xg = _calls_rps(model.predict_proba, pool, batch, seconds)
        out[str(batch)] = {
            "sklearn_rows_per_s": round(sk),
            "forest_booster_rows_per_s": round(xg),
            "speedup": round(xg / sk, 1),
        }
        print(
            f"random_forest batch {batch:>6}: scikit-learn {sk:>9,.0f} rows/s, "
            f"XGBoost booster {xg:>9,.0f} rows/s ({xg / sk:.1f}x)"
        )
    sample = pool[:20_000]
    diff = np.abs(pipeline.predict_proba(sample)[:, 1] - model.predict_proba(sample))
    out["max_abs_difference"] = float(diff.max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="TICKCAST_EXPLAIN_BUDGET")
    parser.add_argument("--seconds", type=float, default=2.0, help="per forest timing")
    parser.add_argument("--model", action="append", choices=KINDS)
    parser.add_argument("--epochs", type=int, default=2, help="the MLP's and LSTM's")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Skipping features without any observed")

    fs = FeatureSet.default()
    frame = _frame(fs)
    pool = frame[list(fs.names)].to_numpy(dtype=np.float64)
    records = [
        {"symbol": f"S{i % 100:03d}", "ts": i, "feature_set_version": fs.version, "values": v}
        for i, v in enumerate(pool[:20_000].tolist())
    ]
    result: dict[str, Any] = {
        "benchmark": "explain",
        "rows": args.rows,
        "trees": args.trees,
        "top_k": args.top_k,
        "explain_budget": args.budget,
        "features": len(fs.names),
        "cpu_count": os.cpu_count(),
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        for kind in args.model or KINDS:
            neural = kind in NEURAL
            params = {"epochs": args.epochs} if neural else {"n_estimators": args.trees}
            model = make_model(kind, 0, params)
            columns = ["symbol", "ts_ms", *fs.names] if kind == "lstm" else list(fs.names)
            t0 = time.perf_counter()
            model.fit(frame[columns], frame["label"].to_numpy())
            packaged = PackagedModel(kind, model, tuple(fs.names), fs.version, 1, 0.01)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            packaged.prepare(cache_dir(Path(tmp)))
            cases: dict[str, Any] = {
                "fit_s": round(fit_s, 2),
                "prepare_s": round(time.perf_counter() - t0, 2),
                "path": packaged.scoring_path,
            }
            if neural:
                cases["ig_steps"] = model.ig_steps  # type: ignore[attr-defined]
            if kind == "random_forest":
                cases["scoring"] = _forest_cases(packaged, pool, args.seconds)
            cases["explain"] = _explain_cases(packaged, kind, records, args)
            result["models"][kind] = cases
    print(json.dumps(result))


if __name__ == "__main__":
    main()
