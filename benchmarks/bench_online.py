"""Online learning: learner cost and memory over a long replay, joiner cost, promotion errors.

* Each default challenger learns a long drifting stream (``--rows``, 12 features) in
  micro-batches of 500 (predict the batch, then learn it — prequential) and reports µs per
  row, prequential accuracy, and its River memory estimate at every quarter of the replay
  (bounded models plateau).
* ``OutcomeJoiner`` µs per bar with 3 models × 2 horizons, and its pickled size.
* False-promotion rate under the null (two equally skilled models) over ``--seeds`` seeds,
  one look of ``min_samples`` pairs each, for DM and Welch with ``min_effect`` 0 and with the
  default 0.02; plus the rate per look when one long null stream is looked at repeatedly.

    .venv/bin/python benchmarks/bench_online.py [--rows 20000] [--seeds 1000]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time

import numpy as np

from online_learning.challengers import default_challengers
from online_learning.outcomes import OutcomeJoiner
from online_learning.promotion import ChampionChallengerTest, PromotionPolicy
from online_learning.synthetic import paired_outcomes, prediction


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
    args = parser.parse_args()
    result = {
        "rows": args.rows,
        "learners": bench_learners(args.rows),
        "joiner": bench_joiner(),
        "false_promotion_rate_alpha_0.05": false_promotion(args.seeds),
        "seeds": args.seeds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
