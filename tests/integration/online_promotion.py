"""Shared set-up of the online-promotion tests: feature names, rows with warm-up gaps, and an
``always_up`` champion registered in a real MLflow store."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tickcast.config import Settings
from training.champion import PackagedModel
from training.models import make_model
from training.reference import ReferenceDistributions, reference_from_matrix
from training.registry import default_name, register, watch_aliases

NAMES = ("rsi_14", "ret_1", "vol_20", "spread")
FSV = "fs1"  # the feature-set version of devtools.synthetic.outcomes's predictions
NAME = default_name(1)


def feature_matrix(n: int, seed: int) -> np.ndarray:
    """``n`` rows of the four features, about 10 % missing (warm-up gaps)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def register_champion(settings: Settings, return_scale: float) -> ReferenceDistributions:
    """Register an ``always_up`` v1 as the champion; return its drift reference."""
    X = feature_matrix(200, 0)
    model = make_model("always_up").fit(pd.DataFrame(X, columns=list(NAMES)), np.arange(200) % 2)
    packaged = PackagedModel("always_up", model, NAMES, FSV, 1, return_scale, (0, 200))
    reference = reference_from_matrix(X, NAMES, FSV)
    entry = register(packaged, name=NAME, reference=reference, settings=settings)
    assert watch_aliases(settings, NAME) == (entry.version, ())
    return reference
