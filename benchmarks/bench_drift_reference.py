"""Drift's champion reference: what one registry poll and one switch cost.

A fresh local MLflow store (sqlite, in a temporary directory) holds the served model with two
versions, each with a training reference of the default feature set. Measured, ``--repeat``
times each, median and p95 in milliseconds:

* ``poll_unchanged_ms``: :meth:`ChampionReferences.poll` when the champion is the one in use
  (what the drift process's background thread does every ``TICKCAST_MODEL_POLL_INTERVAL_S``);
* ``fetch_ms``: downloading and checking the champion's ``reference.json`` (a switch);
* ``rebuild_ms``: building the windowed monitor from it (the part of a switch on the consumer
  thread; the download happens in the background thread).

    .venv/bin/python benchmarks/bench_drift_reference.py [--repeat 20]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from indicators.feature_set import FeatureSet
from monitoring.drift import DriftMonitor
from monitoring.drift_reference import ChampionReferences
from tickcast.config import Settings
from training.champion import PackagedModel
from training.models import make_model
from training.reference import reference_from_matrix
from training.registry import register


def _stats(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples)
    return {
        "median": round(float(np.median(arr)), 2),
        "p95": round(float(np.quantile(arr, 0.95)), 2),
    }


def _timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    fs = FeatureSet.default()
    names = list(fs.names)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            mlflow_tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}",
            mlflow_artifact_root=str(Path(tmp) / "artifacts"),
            model_name="bench-drift-h1",
        )
        rng = np.random.default_rng(0)
        rows = rng.normal(size=(5000, len(names)))
        model = make_model("always_up").fit(
            pd.DataFrame(rows[:40], columns=names), np.arange(40) % 2
        )
        packaged = PackagedModel("always_up", model, tuple(names), fs.version, 1, 0.01, (0, 40))
        reference = reference_from_matrix(rows, names, fs.version)
        register(packaged, name=settings.model_name, reference=reference, settings=settings)
        champions = ChampionReferences(settings, settings.model_name, names, fs.version)
        found = champions.champion()
        assert found is not None
        version, run_id = found
        champions.poll(version)  # warm: imports, the store's first connection
        poll = _timed(lambda: champions.poll(version), args.repeat)
        fetch = _timed(lambda: champions.fetch(version, run_id), args.repeat)
        loaded = champions.fetch(version, run_id)
        rebuild = _timed(
            lambda: DriftMonitor(names, dict(loaded.distributions), window_ms=86_400_000),
            args.repeat,
        )
    result = {
        "benchmark": "drift_reference",
        "features": len(names),
        "repeat": args.repeat,
        "store": "mlflow sqlite + local artifacts",
        "poll_unchanged_ms": _stats(poll),
        "fetch_ms": _stats(fetch),
        "rebuild_ms": _stats(rebuild),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
