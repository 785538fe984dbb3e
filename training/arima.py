"""ARIMA per symbol as a forecaster of the next one-bar log return, filtered in O(1) per tick.

Offline, :func:`fit_symbol` fits a statsmodels ``ARIMA(p, 0, q)`` with a constant to one
symbol's ``ret_1`` series and keeps only its state-space matrices (:class:`StateSpace`). On
the stream, :func:`advance` runs one step of the Kalman filter from the symbol's
:class:`FilterState` (the predicted state and its covariance, a few floats): update with the
observed return (skipped when it is missing, as statsmodels does), then predict the next
one. The one-step forecast of the next return is ``Z a + d`` with variance ``Z P Z' + H``;
P(up) = Φ(forecast / √variance). The same function serves the walk-forward, the worker and
the check against statsmodels' own one-step predictions (``tests/unit/training``).

>>> import numpy as np
>>> ss = StateSpace(*(np.atleast_2d(v) for v in (1.0, 0.0, 0.0, 0.5, 0.0, 1.0, 1.0)),
...                 np.zeros(1), np.eye(1))
>>> state = initial(ss)
>>> state, mean, var = advance(ss, state, 2.0)
>>> round(mean, 6), round(var, 6)
(1.0, 1.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.errors import TrainingError
from training.models import Model

RETURN = "ret_1"
KEYS = ("symbol", "ts_ms")


@dataclass(frozen=True)
class StateSpace:
    """Time-invariant state-space form: y = Z a + d + e (var H); a' = T a + c + R u (var Q)."""

    design: np.ndarray
    obs_intercept: np.ndarray
    obs_cov: np.ndarray
    transition: np.ndarray
    state_intercept: np.ndarray
    selection: np.ndarray
    state_cov: np.ndarray
    initial_state: np.ndarray
    initial_state_cov: np.ndarray


FilterState = tuple[np.ndarray, np.ndarray]
"""(predicted state a_{t|t-1}, its covariance P_{t|t-1})."""


def initial(ss: StateSpace) -> FilterState:
    """The filter's state before the first observation."""
    return np.asarray(ss.initial_state, float).ravel().copy(), np.asarray(
        ss.initial_state_cov, float
    ).copy()


def forecast(ss: StateSpace, state: FilterState) -> tuple[float, float]:
    """(mean, variance) of the next observation given the predicted state."""
    a, P = state
    Z = ss.design
    mean = float((Z @ a)[0] + ss.obs_intercept.ravel()[0])
    var = float((Z @ P @ Z.T)[0, 0] + ss.obs_cov[0, 0])
    return mean, var


def advance(ss: StateSpace, state: FilterState, y: float) -> tuple[FilterState, float, float]:
    """Filter one observation ``y`` (NaN = missing); the next state and its forecast.

    Constant work per call (the state has ``max(p, q + 1)`` elements).
    """
    a, P = state
    T, Z = ss.transition, ss.design
    c = ss.state_intercept.ravel()
    RQR = ss.selection @ ss.state_cov @ ss.selection.T
    if math.isfinite(y):
        mean, var = forecast(ss, state)
        gain = (T @ P @ Z.T)[:, 0] / var
        a_next = T @ a + c + gain * (y - mean)
        P_next = T @ P @ T.T + RQR - np.outer(gain, gain) * var
    else:
        a_next = T @ a + c
        P_next = T @ P @ T.T + RQR
    P_next = 0.5 * (P_next + P_next.T)
    nxt = (a_next, P_next)
    return (nxt, *forecast(ss, nxt))


def prob_up(mean: float, var: float) -> float:
    """P(next return > 0) under the Gaussian forecast.

    >>> prob_up(0.0, 1.0)
    0.5
    """
    if not (math.isfinite(mean) and math.isfinite(var)) or var <= 0:
        return 0.5
    return 0.5 * math.erfc(-mean / math.sqrt(2.0 * var))


def fit_symbol(returns: np.ndarray, order: tuple[int, int] = (1, 1)) -> StateSpace:
    """Fit ``ARIMA(p, 0, q)`` with a constant to one symbol's returns; its state space.

    Exact Gaussian maximum likelihood through the innovations algorithm
    (``method="innovations_mle"``): the same estimator as the default state-space MLE, 6x
    faster on 2,500 daily returns (2.8 s against 18 s on a busy 2-core machine).
    """
    from statsmodels.tsa.arima.model import ARIMA

    y = np.asarray(returns, dtype=float)
    y = y[np.isfinite(y)]  # the estimator takes no gaps; the stream's filter skips them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short or flat series
        model = ARIMA(y, order=(order[0], 0, order[1]), trend="c")
        result = model.fit(method="innovations_mle")
    return state_space_of(result)


def state_space_of(result: Any) -> StateSpace:
    """The time-invariant matrices of a fitted statsmodels state-space result."""
    fr = result.filter_results

    def first(name: str, ndim: int) -> np.ndarray:
        value = np.asarray(getattr(fr, name), dtype=float)
        if value.ndim == ndim + 1:  # one matrix per time step: they must all be the same
            if not np.allclose(value, value[..., :1], rtol=0.0, atol=0.0):
                raise TrainingError("time_varying", f"ARIMA {name} varies with time")
            value = value[..., 0]
        return value.copy()

    return StateSpace(
        design=np.atleast_2d(first("design", 2)),
        obs_intercept=np.atleast_1d(first("obs_intercept", 1)),
        obs_cov=np.atleast_2d(first("obs_cov", 2)),
        transition=np.atleast_2d(first("transition", 2)),
        state_intercept=np.atleast_1d(first("state_intercept", 1)),
        selection=np.atleast_2d(first("selection", 2)),
        state_cov=np.atleast_2d(first("state_cov", 2)),
        initial_state=np.asarray(fr.initial_state, float).copy(),
        initial_state_cov=np.asarray(fr.initial_state_cov, float).copy(),
    )


class ARIMAModel(Model):
    """One ARIMA per training symbol; P(up) of the next bar from the one-step forecast.

    Each symbol's parameters are fitted on its last ``fit_rows`` training returns.

    Rows must carry ``symbol`` and ``ts_ms`` (:data:`sequence_keys`) and the ``ret_1``
    feature. A symbol with fewer than ``min_rows`` finite returns, or one not seen in
    training, gets P(up) = 0.5. Forecasts are of the next bar; for longer horizons the
    same one-step probability is used.
    """

    name = "arima"
    sequence_keys = KEYS

    def __init__(
        self, seed: int = 0, p: int = 1, q: int = 1, min_rows: int = 30, fit_rows: int = 1000
    ) -> None:
        super().__init__()
        self.params: dict[str, Any] = {
            "p": p, "q": q, "min_rows": min_rows, "fit_rows": fit_rows, "seed": seed,
        }  # fmt: skip
        self.symbols: dict[str, StateSpace] = {}
        self.ret_column = 0
        """Position of ``ret_1`` among the features (the scoring matrix's columns)."""

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> None:
        if not {*KEYS, RETURN} <= set(X.columns):
            raise TrainingError("missing_keys", f"ARIMA needs symbol, ts_ms and {RETURN}")
        self.symbols = {}
        self.ret_column = [c for c in X.columns if c not in KEYS].index(RETURN)
        frame = X.sort_values(["symbol", "ts_ms"], kind="stable")
        order = (int(self.params["p"]), int(self.params["q"]))
        for symbol, rows in frame.groupby("symbol", sort=True):
            returns = rows[RETURN].to_numpy(dtype=float)[-int(self.params["fit_rows"]) :]
            if np.isfinite(returns).sum() >= int(self.params["min_rows"]):
                self.symbols[str(symbol)] = fit_symbol(returns, order)

    def step(
        self, X: np.ndarray, symbols: Sequence[str], states: MutableMapping[str, Any]
    ) -> np.ndarray:
        """P(up) of each row (stream order), advancing its symbol's filter by one tick.

        ``X`` is the scoring matrix (the feature set in order); ``ret_1`` is one of its columns.
        """
        return self._run(X[:, self.ret_column], symbols, states)

    def _run(
        self, returns: np.ndarray, symbols: Sequence[str], states: MutableMapping[str, Any]
    ) -> np.ndarray:
        prob = np.full(len(symbols), 0.5)
        for i, symbol in enumerate(symbols):
            ss = self.symbols.get(symbol)
            if ss is None:
                continue
            state: Any = states.get(symbol)
            if not _valid(state, ss):
                state = initial(ss)
            state, mean, var = advance(ss, state, float(returns[i]))
            states[symbol] = state
            prob[i] = prob_up(mean, var)
        return prob

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        """Each symbol's rows as one sequence from the initial state, in time order (without
        keys, each row is one step from the initial state of no symbol: 0.5)."""
        if not set(KEYS) <= set(X.columns):
            return np.full(len(X), 0.5)
        order = np.lexsort((X["symbol"].to_numpy(), X["ts_ms"].to_numpy()))
        returns = X[RETURN].to_numpy(dtype=float)[order]
        symbols = X["symbol"].astype(str).to_numpy()[order].tolist()
        prob = np.empty(len(X))
        prob[order] = self._run(returns, symbols, {})
        return prob


def _valid(state: Any, ss: StateSpace) -> bool:
    m = ss.transition.shape[0]
    return (
        isinstance(state, tuple)
        and len(state) == 2
        and getattr(state[0], "shape", None) == (m,)
        and getattr(state[1], "shape", None) == (m, m)
    )


def arima_model(seed: int = 0, **params: Any) -> ARIMAModel:
    """ARIMA(1, 0, 1) with a constant per symbol."""
    return ARIMAModel(seed=seed, **{k: v for k, v in params.items() if k != "n_estimators"})
