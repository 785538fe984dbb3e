"""Nested hyper-parameter tuning with Optuna inside ONE walk-forward training window.

:class:`TunedModel` (``--model xgboost --tune N`` registers ``xgboost_tuned``) is fitted on
the rows of a training window only. It splits them in time (:func:`training.inner.
inner_blocks`): the newest :data:`VALIDATION_FRACTION` of the window's timestamps is the
validation block, the rows before it (purged of labels reaching into it) are fitted. An
Optuna study with a seeded ``TPESampler`` runs ``n_trials`` trials (the budget), each
fitting the model with sampled parameters and scoring the validation block's log loss
(a proper score: the expected return the scorer derives from P(up) needs calibration,
and AUC on one short block is noisy). The model is then refitted on the whole window
with the best parameters. The outer fold's test period is never among the rows, so the
walk-forward figures of a tuned model stay out-of-sample (``tests/unit/training/
test_leakage.py`` holds this).

:meth:`TunedModel.study_summary` is the study (every trial's number, parameters, value and
state; the best ones; the split) as plain JSON; ``tickcast train`` stores it with the MLflow
run and the walk-forward report lists each fold's best trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from training.errors import TrainingError
from training.inner import WindowModel, inner_blocks
from training.models import Model, make_model

VALIDATION_FRACTION = 0.2
"""Share of the window's timestamps (the newest) that validates each trial."""
SUFFIX = "_tuned"

Suggest = Callable[[Any], Any]
"""One parameter's draw from an ``optuna.Trial``."""


def _int(name: str, low: int, high: int, step: int = 1, log: bool = False) -> Suggest:
    return lambda trial: trial.suggest_int(name, low, high, step=step, log=log)


def _float(name: str, low: float, high: float, log: bool = False) -> Suggest:
    return lambda trial: trial.suggest_float(name, low, high, log=log)


def _space(*suggests: tuple[str, Suggest]) -> dict[str, Suggest]:
    return dict(suggests)


SPACES: dict[str, dict[str, Suggest]] = {
    "xgboost": _space(
        ("n_estimators", _int("n_estimators", 50, 300, step=25)),
        ("max_depth", _int("max_depth", 2, 6)),
        ("learning_rate", _float("learning_rate", 0.01, 0.3, log=True)),
        ("subsample", _float("subsample", 0.5, 1.0)),
        ("colsample_bytree", _float("colsample_bytree", 0.5, 1.0)),
        ("min_child_weight", _float("min_child_weight", 1.0, 50.0, log=True)),
        ("reg_lambda", _float("reg_lambda", 0.1, 10.0, log=True)),
    ),
    "lightgbm": _space(
        ("n_estimators", _int("n_estimators", 50, 300, step=25)),
        ("num_leaves", _int("num_leaves", 4, 63)),
        ("learning_rate", _float("learning_rate", 0.01, 0.3, log=True)),
        ("min_child_samples", _int("min_child_samples", 5, 200, log=True)),
        ("colsample_bytree", _float("colsample_bytree", 0.5, 1.0)),
        ("reg_lambda", _float("reg_lambda", 0.1, 10.0, log=True)),
    ),
    "random_forest": _space(
        ("n_estimators", _int("n_estimators", 50, 300, step=25)),
        ("max_depth", _int("max_depth", 3, 12)),
        ("min_samples_leaf", _int("min_samples_leaf", 5, 200, log=True)),
        ("max_features", _float("max_features", 0.2, 1.0)),
    ),
    "logistic": _space(("C", _float("C", 1e-4, 10.0, log=True))),
}
"""The models that can be tuned and their search spaces (the neural and time-series models
and the stack are not: a trial of theirs costs minutes)."""


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-12) -> float:
    """Mean binary log loss.

    >>> round(log_loss(np.array([1, 0]), np.array([0.8, 0.4])), 6)
    0.366985
    """
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    t = np.asarray(y, dtype=np.float64)
    return float(-np.mean(t * np.log(q) + (1.0 - t) * np.log(1.0 - q)))


def trial_loss(
    name: str,
    params: dict[str, Any],
    seed: int,
    fit: tuple[pd.DataFrame, np.ndarray],
    validate: tuple[pd.DataFrame, np.ndarray],
) -> float:
    """Fit ``name`` with ``params`` on ``fit`` rows; log loss on the ``validate`` rows.

    The one place a trial touches data (the leakage test records its rows here).
    """
    model = make_model(name, seed, params).fit(*fit)
    return log_loss(validate[1], model.predict_proba(validate[0]))


class TunedModel(WindowModel):
    """``base`` tuned by Optuna inside the window it is fitted on, then refitted on all of it.

    ``fixed`` parameters (e.g. ``--n-estimators``) are not searched. Scoring goes through
    the refitted base model: ``estimator`` is its library estimator, so the registry's fast
    paths and TreeSHAP explanations apply as to the untuned model.
    """

    def __init__(
        self,
        base: str,
        n_trials: int = 20,
        seed: int = 0,
        fixed: dict[str, Any] | None = None,
        validation_fraction: float = VALIDATION_FRACTION,
    ) -> None:
        super().__init__()
        if base not in SPACES:
            known = sorted(SPACES)
            raise TrainingError("not_tunable", f"{base!r} cannot be tuned; tunable: {known}")
        if n_trials < 1:
            raise TrainingError("bad_params", f"n_trials must be >= 1, got {n_trials}")
        if not 0.0 < validation_fraction < 1.0:
            raise TrainingError("bad_params", "validation_fraction must lie in (0, 1)")
        self.base = base
        self.name = base + SUFFIX
        self.n_trials = int(n_trials)
        self.seed = int(seed)
        self.fixed = dict(fixed or {})
        self.validation_fraction = float(validation_fraction)
        self.params: dict[str, Any] = {}
        self.best: Model | None = None
        self.summary: dict[str, Any] = {}

    @property
    def estimator(self) -> Any:
        """The refitted base model's library estimator (``None`` before fitting)."""
        return getattr(self.best, "estimator", None)

    def _fit_window(
        self, X: pd.DataFrame, y: np.ndarray, ts: np.ndarray, label_end_ts: np.ndarray
    ) -> None:
        import optuna

        split = next(inner_blocks(ts, label_end_ts, 1, self.validation_fraction), None)
        if split is None:
            raise TrainingError("window_too_short", "no rows left to fit before validation")
        fit_rows, val_rows = split
        fit = (X.iloc[fit_rows], y[fit_rows])
        validate = (X.iloc[val_rows], y[val_rows])
        space = {k: draw for k, draw in SPACES[self.base].items() if k not in self.fixed}

        def objective(trial: optuna.Trial) -> float:
            params = {k: draw(trial) for k, draw in space.items()}
            return trial_loss(self.base, {**params, **self.fixed}, self.seed, fit, validate)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.optimize(objective, n_trials=self.n_trials, n_jobs=1, gc_after_trial=False)
        self.params = {**study.best_params, **self.fixed}
        self.best = make_model(self.base, self.seed, self.params).fit(X, y)
        self.summary = {
            "base": self.base,
            "n_trials": self.n_trials,
            "sampler": f"TPESampler(seed={self.seed})",
            "objective": "validation log loss (minimised)",
            "fit_rows": int(fit_rows.size),
            "validation_rows": int(val_rows.size),
            "fit_end_ts": int(ts[fit_rows].max()),
            "validation_start_ts": int(ts[val_rows].min()),
            "validation_end_ts": int(ts[val_rows].max()),
            "best_value": float(study.best_value),
            "best_params": self.params,
            "trials": [
                {
                    "number": t.number,
                    "params": t.params,
                    "value": None if t.value is None or not math.isfinite(t.value) else t.value,
                    "state": t.state.name,
                }
                for t in study.trials
            ],
        }

    def _proba_features(self, X: pd.DataFrame) -> np.ndarray:
        if self.best is None:
            raise TrainingError("not_fitted", f"{self.name} is not fitted")
        return self.best.predict_proba(X)

    def fit_summary(self) -> dict[str, Any]:
        """The study of the last fit, without the per-trial list (for the walk-forward report)."""
        return {k: v for k, v in self.summary.items() if k != "trials"}

    def study_summary(self) -> dict[str, Any]:
        """The whole study of the last fit: trials, parameters, values, best (JSON-ready)."""
        return dict(self.summary)


def tuned_model(base: str, seed: int = 0, **params: Any) -> TunedModel:
    """``TunedModel(base)``; ``n_trials`` and ``validation_fraction`` configure the study,
    any other parameter is fixed (not searched)."""
    n_trials = int(params.pop("n_trials", 20))
    fraction = float(params.pop("validation_fraction", VALIDATION_FRACTION))
    return TunedModel(base, n_trials, seed, params, fraction)
