"""Batch scoring throughput of the in-stream scorer with XGBoost and LightGBM (``--model``: also
the ONNX MLP and LSTM and the per-symbol ARIMA; the last two step each symbol's state per row;
and the stack: its four bases, then the meta-learner).

Trains each model (300 trees) on the 41 default features of synthetic random-walk bars, then
scores ``--rows`` (1,000,000) feature rows in micro-batches, two ways:

* ``model``: :meth:`PackagedModel.predict_proba` on ready float64 matrices (the batch fast
  path chosen by :meth:`PackagedModel.prepare`, named by ``path`` in the JSON: XGBoost
  ``inplace_predict``; LightGBM compiled by ``lleaves`` into a fresh temporary cache
  directory, as the registry does at model load, unless ``--no-compile``);
* ``scorer``: :meth:`agents.scoring.Scorer.score` from feature records (dicts with a list of
  41 values) to prediction dicts — matrix packing and output records included, i.e. what
  the stream pays per row.

For LightGBM it also times ``Booster.predict`` itself at each batch size
(``booster_model_rows_per_s``, the path before compiling), the first compile
(``compile_s``) and loading the compiled forest back from the cache (``cache_load_s``,
what a restart pays), all in the same run.

Rows cycle through a pool of distinct feature vectors (with warm-up NaNs), so memory stays
small. Prints one line per case and, last, one JSON object (``rows_per_s`` per model: the
best scorer figure over the batch sizes; ``target_rows_per_s`` = 200,000).

    .venv/bin/python benchmarks/bench_scoring.py [--rows 1000000] [--batch 2000 --batch 10000]
        [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.scoring import ModelSet, Scorer
from devtools.synthetic.bars import random_walk_panel
from indicators import FeatureSet, compute_frame
from training.champion import PackagedModel, ScoringModel
from training.compiled_trees import cache_dir
from training.labels import make_labels
from training.models import make_model

TARGET = 200_000


def _features(fs: FeatureSet, symbols: int, bars: int) -> pd.DataFrame:
    panel = random_walk_panel(tuple(f"S{i:03d}" for i in range(symbols)), n=bars, seed=7)
    feats = compute_frame(panel, fs)
    labels = make_labels(panel, 1)
    keep = ["symbol", "ts_ms", "label", "label_end_ts"]  # the stack splits its window in time
    return feats.merge(labels[keep], on=["symbol", "ts_ms"])


def _train(
    kind: str, frame: pd.DataFrame, fs: FeatureSet, trees: int, epochs: int | None = None
) -> PackagedModel:
    neural = kind in ("mlp", "lstm") and epochs is not None
    model = make_model(kind, 0, {"epochs": epochs} if neural else {"n_estimators": trees})
    columns = [*getattr(model, "sequence_keys", ()), *fs.names]  # the LSTM and ARIMA: keys too
    model.fit(frame[columns], frame["label"].to_numpy())
    return PackagedModel(kind, model, tuple(fs.names), fs.version, 1, 0.01)


def _model_path(model: PackagedModel, pool: np.ndarray, rows: int, batch: int) -> float:
    """Rows/s of the model alone; a stateful one steps 100 symbols' states, in stream order."""
    symbols = [f"S{i % 100:03d}" for i in range(len(pool))]
    states: dict[str, Any] = {}
    done, start = 0, time.perf_counter()
    while done < rows:
        lo = done % len(pool)
        n = min(batch, rows - done, len(pool) - lo)
        if model.stateful:
            model.step(pool[lo : lo + n], symbols[lo : lo + n], states)
        else:
            model.predict_proba(pool[lo : lo + n])
        done += n
    return rows / (time.perf_counter() - start)


def _prepare(model: PackagedModel, kind: str, data_dir: Path | None) -> dict[str, Any]:
    """Prepare ``model`` as the registry would; for LightGBM time compile and cache load."""
    if data_dir is not None and kind == "stack":  # its LightGBM base compiled, as at load
        return {"path": model.prepare(cache_dir(data_dir))}
    if data_dir is None or kind != "lightgbm":
        return {"path": model.prepare()}
    t0 = time.perf_counter()
    model.prepare(cache_dir(data_dir))
    compile_s = time.perf_counter() - t0
    reloaded: PackagedModel = pickle.loads(pickle.dumps(model))  # as after a restart
    t0 = time.perf_counter()
    reloaded.prepare(cache_dir(data_dir))
    return {
        "path": model.scoring_path,
        "compile_s": round(compile_s, 2),
        "cache_load_s": round(time.perf_counter() - t0, 3),
    }


def _scorer_path(scorer: Scorer, records: list[dict[str, Any]], rows: int, batch: int) -> float:
    """Rows/s from records to predictions; per-symbol state lives in each symbol's dict (as
    in ``SymbolStream.extra``), which a stateless model never touches."""
    extras: dict[str, dict[str, Any]] = {r["symbol"]: {} for r in records}
    done, start = 0, time.perf_counter()
    while done < rows:
        lo = done % len(records)
        n = min(batch, rows - done, len(records) - lo)
        scorer.score_batch(records[lo : lo + n], 0, extras)  # type: ignore[arg-type]
        done += n
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument(
        "--model", action="append",
        choices=("xgboost", "lightgbm", "random_forest", "mlp", "lstm", "arima", "stack"),
        help="model types to time (repeatable; default xgboost and lightgbm)",
    )  # fmt: skip
    parser.add_argument(
        "--no-compile", action="store_true", help="keep LightGBM on Booster.predict"
    )
    parser.add_argument("--epochs", type=int, help="the MLP's and LSTM's (default theirs, 20)")
    args = parser.parse_args()
    batches = args.batch or [2_000, 10_000]

    fs = FeatureSet.default()
    began = time.perf_counter()
    frame = _features(fs, symbols=100, bars=400)
    feature_s = time.perf_counter() - began
    pool = frame[list(fs.names)].to_numpy(dtype=np.float64)
    pool = np.tile(pool, (int(np.ceil(args.pool / len(pool))), 1))[: args.pool]
    records = [
        {"symbol": f"S{i % 100:03d}", "ts": i, "feature_set_version": fs.version, "values": v}
        for i, v in enumerate(pool[: min(args.pool, 20_000)].tolist())
    ]
    result: dict[str, Any] = {
        "benchmark": "scoring",
        "rows": args.rows,
        "features": len(fs.names),
        "trees": args.trees,
        "train_rows": len(frame),
        "nan_share": round(float(np.isnan(pool).mean()), 4),
        "cpu_count": os.cpu_count(),
        "target_rows_per_s": TARGET,
        "models": {},
    }
    tmp = tempfile.TemporaryDirectory(prefix="bench-scoring-")
    data_dir = None if args.no_compile else Path(tmp.name)
    for kind in args.model or ("xgboost", "lightgbm"):
        t0 = time.perf_counter()
        model = _train(kind, frame, fs, args.trees, args.epochs)
        fit_s = time.perf_counter() - t0
        booster_rps: dict[int, float] = {}
        if kind == "lightgbm":  # the library path itself, before any compile
            _model_path(model, pool, 10_000, 2_000)
            booster_rps = {b: _model_path(model, pool, args.rows, b) for b in batches}
        cases: dict[str, Any] = {"fit_s": round(fit_s, 2), **_prepare(model, kind, data_dir)}
        scorer = Scorer(
            ModelSet(ScoringModel.from_packaged(model, name=kind, version=1, role="champion")),
            fs.version,
        )
        _model_path(model, pool, 10_000, 2_000)  # warm-up
        for batch in batches:
            model_rps = _model_path(model, pool, args.rows, batch)
            scorer_rps = _scorer_path(scorer, records, args.rows, batch)
            cases[str(batch)] = {
                "model_rows_per_s": round(model_rps),
                "scorer_rows_per_s": round(scorer_rps),
            }
            line = (
                f"{kind:<9} batch {batch:>6} [{cases['path']}]: model {model_rps:>10,.0f} "
                f"rows/s, scorer (dicts in/out) {scorer_rps:>10,.0f} rows/s"
            )
            if batch in booster_rps:
                cases[str(batch)]["booster_model_rows_per_s"] = round(booster_rps[batch])
                line += f" (Booster.predict alone {booster_rps[batch]:,.0f})"
            print(line)
        best = max(batches, key=lambda b: cases[str(b)]["scorer_rows_per_s"])
        cases["rows_per_s"] = cases[str(best)]["scorer_rows_per_s"]
        cases["batch_size"] = best
        cases["meets_target"] = cases["rows_per_s"] >= TARGET
        result["models"][kind] = cases
    tmp.cleanup()
    result["feature_build_s"] = round(feature_s, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
