"""Synthetic predictions and paired outcomes (tests, benchmarks and demos; no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np

from online_learning.outcomes import resolve
from schemas.records import Outcome


def prediction(
    ts: int,
    prob_up: float,
    *,
    symbol: str = "AAA",
    horizon: int = 1,
    model: str = "champ",
    version: str = "1",
    role: str = "CHAMPION",
    features: list[float] | None = None,
) -> dict[str, Any]:
    pred: dict[str, Any] = {
        "symbol": symbol, "ts": ts, "horizon": horizon, "prob_up": prob_up,
        "expected_return": 0.0, "model_name": model, "model_version": version, "role": role,
        "feature_set_version": "fs1", "scoring_latency_ms": 0.1, "produced_at": ts,
    }  # fmt: skip
    if features is not None:
        pred["features"] = features
    return pred


def paired_outcomes(
    seed: int,
    n: int,
    champ_skill: float,
    chall_skill: float,
    *,
    challenger: tuple[str, str] = ("river-logreg", "online-10"),
    champion: tuple[str, str] = ("champ", "1"),
    symbols: int = 5,
    cost_bps: float = 0.0,
) -> list[Outcome]:
    """Champion and challenger outcomes of the same ``n`` events (symbol, ts).

    Each model's ``prob_up = sigmoid(skill * sign(r) + noise)``: with equal skills the two
    have the same expected loss and return (the null of the promotion test).
    """
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 1e-3, n)
    sign = np.sign(r)
    out: list[Outcome] = []
    for skill, (name, version, role) in (
        (champ_skill, (*champion, "CHAMPION")),
        (chall_skill, (*challenger, "CHALLENGER")),
    ):
        p = 1.0 / (1.0 + np.exp(-(skill * sign + rng.normal(0.0, 1.0, n))))
        for i in range(n):
            sym, ts = f"S{i % symbols}", 1_000_000 + (i // symbols) * 60_000
            pred = prediction(ts, float(p[i]), symbol=sym, model=name, version=version, role=role)
            out.append(resolve(pred, 100.0, 100.0 * float(np.exp(r[i])), ts + 60_000, cost_bps))
    return out
