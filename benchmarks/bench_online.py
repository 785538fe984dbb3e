"""Online learning: learner cost and memory over a long replay, joiner cost, promotion errors.

* Each default challenger learns a long drifting stream (``--rows``, 12 features) in
  micro-batches of 500 (predict the batch, then learn it — prequential) and reports µs per
  row, prequential accuracy, and its River memory estimate at every quarter of the replay
  (bounded models plateau).
* A frozen (promoted) ``river-logreg`` champion scored as the scorer does
  (``PackagedModel.predict_proba``): µs per row at 1,000 and 100 rows (41 features, 10%
  warm-up NaN) through River's dataframe path (the rule before the numpy form) and through
  ``FrozenRiverModel`` (numpy), interleaved in the same run, and the ratio;
  ``--frozen-only`` runs just this case.
* ``OutcomeJoiner`` µs per bar with 3 models × 2 horizons, and its pickled size.
* False-promotion rate under the null (two equally skilled models) over ``--seeds`` seeds,
  one look of ``min_samples`` pairs each, for DM and Welch with ``min_effect`` 0 and with the
  default 0.02; plus the rate per look when one long null stream is looked at repeatedly.

    .venv/bin/python benchmarks/bench_online.py [--rows 20000] [--seeds 1000] [--frozen-only]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from typing import Any

import numpy as np
import pandas as pd

from devtools.synthetic.outcomes import paired_outcomes, prediction
from online_learning.challengers import default_challengers, river_proba_many
from online_learning.frozen import freeze
from online_learning.outcomes import OutcomeJoiner
from online_learning.promotion import ChampionChallengerTest, PromotionPolicy
from training.champion import PackagedModel


def _stream(n: int, k: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    w = rng.normal(size=k)
    drift = np.where(np.arange(n) < n // 2, 1.0, -1.0)  # the concept flips half way
    y = (X @ w) * drift + rng.normal(0, 2.0, n) > 0
    return X, y


def bench_learners(rows: int, batch: int = 500) -> dict[str, dict[str, object]]:
    X, y = _stream(rows)
    out: dict[str, dict[str, object]] = {}
    for c in default_challengers(seed=1, feature_names=[f"f{i}" for i in range(X.shape[1])]):
        learn_s = predict_s = 0.0
        hits = 0
        memory: list[int] = []
        for start in range(0, rows, batch):
            xb, yb = X[start : start + batch], y[start : start + batch]
            t0 = time.perf_counter()
            p = c.predict_proba_many(xb)
            t1 = time.perf_counter()
            c.learn(xb, yb)
            t2 = time.perf_counter()
            predict_s += t1 - t0
            learn_s += t2 - t1
            hits += int(((p > 0.5) == yb).sum())
            if (start + batch) % (rows // 4) == 0:
                memory.append(c.memory_bytes())
        out[c.name] = {
            "learn_us_per_row": round(learn_s / rows * 1e6, 1),
            "predict_us_per_row": round(predict_s / rows * 1e6, 1),
            "prequential_accuracy": round(hits / rows, 4),
            "memory_bytes_by_quarter": memory,
            "pickle_bytes": len(pickle.dumps(c, pickle.HIGHEST_PROTOCOL)),
        }
        print(c.name, out[c.name])
    return out


class _RiverPath:
    """The frozen champion's rule before its numpy form: River's dataframe path."""

    def __init__(self, model: Any, names: list[str]) -> None:
        self.model, self.columns = model, tuple(names)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        matrix = X[list(self.columns)].to_numpy(dtype=np.float64)
        return river_proba_many(self.model, matrix, self.columns)


def bench_frozen(sizes: tuple[int, ...] = (1000, 100), calls: int = 30) -> dict[str, object]:
    """µs per row of a registered frozen scaler + logistic champion: River's path, then numpy.

    Timed through ``PackagedModel.predict_proba(matrix)``, the call the scorer makes.
    """
    names = [f"f{i}" for i in range(41)]
    learner = default_challengers(seed=1, feature_names=names)[0]
    X, y = _stream(5000, k=len(names))
    learner.learn(X, y)
    frozen = freeze(learner, names, "fs", 1)
    before = PackagedModel(
        "river-logreg", _RiverPath(frozen.model, names), tuple(names), "fs", 1, 0.0
    )
    after = PackagedModel("river-logreg", frozen, tuple(names), "fs", 1, 0.0)
    out: dict[str, object] = {"features": len(names), "vectorised": frozen.vectorised}
    rng = np.random.default_rng(1)
    for n in sizes:
        rows = X[:n].copy()
        rows[rng.random(rows.shape) < 0.1] = np.nan  # warm-up gaps
        river_s: list[float] = []
        numpy_s: list[float] = []
        for _ in range(calls):  # interleaved: both see the same machine load
            t0 = time.perf_counter()
            p_river = before.predict_proba(rows)
            t1 = time.perf_counter()
            p_numpy = after.predict_proba(rows)
            t2 = time.perf_counter()
            river_s.append(t1 - t0)
            numpy_s.append(t2 - t1)
        np.testing.assert_allclose(p_numpy, p_river, rtol=1e-9, atol=1e-12)
        river_us, numpy_us = np.median(river_s) / n * 1e6, np.median(numpy_s) / n * 1e6
        out[f"rows_{n}"] = {
            "river_us_per_row": round(float(river_us), 3),
            "numpy_us_per_row": round(float(numpy_us), 3),
            "speedup": round(float(river_us / numpy_us), 1),
        }
        print("frozen river-logreg", n, "rows", out[f"rows_{n}"])
    return out


def bench_joiner(bars: int = 20_000) -> dict[str, float]:
    joiner = OutcomeJoiner(horizons=(1, 5), cost_bps=1.0)
    preds = [
        [prediction(t, 0.6, horizon=h, model=m) for h in (1, 5) for m in ("a", "b", "c")]
        for t in range(bars)
    ]
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, bars)))
    t0 = time.perf_counter()
    n_out = 0
    for t in range(bars):
        n_out += len(joiner.on_bar(t, float(closes[t])))
        joiner.add_predictions(preds[t])
    elapsed = time.perf_counter() - t0
    return {
        "us_per_bar_6_predictions": round(elapsed / bars * 1e6, 2),
        "outcomes": n_out,
        "pickle_bytes": len(pickle.dumps(joiner)),
    }


def false_promotion(seeds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for test in ("dm", "welch"):
        for min_effect in (0.0, 0.02):
            policy = PromotionPolicy(min_samples=500, min_effect=min_effect, test=test)  # type: ignore[arg-type]
            promoted = 0
            for seed in range(seeds):
                t = ChampionChallengerTest(policy)
                t.add(paired_outcomes(10_000 + seed, 500, 0.5, 0.5))
                promoted += t.decide(10**12).promote
            out[f"{test}_min_effect_{min_effect}"] = promoted / seeds
    # one long null stream, looked at after every batch of 100 pairs
    policy = PromotionPolicy(min_samples=500, min_effect=0.0)
    t = ChampionChallengerTest(policy)
    stream = paired_outcomes(7, 100_000, 0.5, 0.5)
    half = len(stream) // 2
    champ, chall = stream[:half], stream[half:]
    evaluated = promoted = 0
    for start in range(0, half, 100):
        t.add(champ[start : start + 100] + chall[start : start + 100])
        d = t.decide(10**12)
        evaluated += d.evaluated
        promoted += d.promote
    out["repeated_looks_evaluations"] = evaluated
    out["repeated_looks_promotions_per_evaluation"] = promoted / max(evaluated, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--frozen-only", action="store_true", help="only the frozen champion")
    args = parser.parse_args()
    if args.frozen_only:
        print(json.dumps({"frozen_champion": bench_frozen()}))
        return
    result = {
        "rows": args.rows,
        "learners": bench_learners(args.rows),
        "frozen_champion": bench_frozen(),
        "joiner": bench_joiner(),
        "false_promotion_rate_alpha_0.05": false_promotion(args.seeds),
        "seeds": args.seeds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
