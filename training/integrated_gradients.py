"""Integrated gradients of the small PyTorch networks, in numpy (pure maths, no torch).

Integrated gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep
Networks", ICML 2017) attribute ``f(x) − f(x')`` to the inputs::

    IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂f/∂x_i (x' + α (x − x')) dα

tickcast's ``f`` is the network's **logit** (log-odds of P(up), the margin units of the
tree models' TreeSHAP), ``x`` the graph's standardised input and the baseline ``x'`` = 0,
i.e. every feature at its training mean (also what a missing value becomes). The integral is
the midpoint rule over ``m`` steps (α = (k + ½)/m), all steps of all rows in ONE batched
forward and backward pass. **Completeness**: the attributions of a row sum to
``f(x) − f(x')`` up to the quadrature error (exact for a network that is linear along the
path, O(1/m²) for a smooth one, a few kinks of the MLP's ReLUs per path otherwise); the
returned rows carry ``f(x')`` as their last (*bias*) column, so a row sums to ≈ ``f(x)``,
like a TreeSHAP row sums to the margin.

* MLP (``training.torch_job.MLP``): ``Linear → ReLU → Linear → ReLU → Linear``.
* LSTM: ONE step of the cell from the symbol's state ``(h, c)`` before the tick (held
  fixed: the attribution is to the current tick's input ``x_t`` only), then the logistic
  head on ``h'``. Gates in torch's order ``i, f, g, o``.

Weights are the ``torch_job`` result arrays (``w1 … b3`` for the MLP; ``w_ih, w_hh, b_ih,
b_hh, w_head, b_head`` for the LSTM) as float64.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

STEPS = 32
"""Default number of midpoint steps ``m``."""

Weights = Mapping[str, np.ndarray]
MLP_KEYS = ("w1", "b1", "w2", "b2", "w3", "b3")
LSTM_KEYS = ("w_ih", "w_hh", "b_ih", "b_hh", "w_head", "b_head")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def mlp_logit_grad(w: Weights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logit (n,), ∂logit/∂x (n, f)) of the MLP at each row of ``x``."""
    a1 = x @ w["w1"].T + w["b1"]
    h1 = np.maximum(a1, 0.0)
    a2 = h1 @ w["w2"].T + w["b2"]
    h2 = np.maximum(a2, 0.0)
    head = w["w3"].reshape(-1)
    logit = h2 @ head + float(np.asarray(w["b3"]).reshape(-1)[0])
    g2 = head * (a2 > 0)
    g1 = (g2 @ w["w2"]) * (a1 > 0)
    return logit, g1 @ w["w1"]


def lstm_logit_grad(
    w: Weights, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(logit (n,), ∂logit/∂x (n, f)) of one LSTM step from ``(h, c)`` at each row of ``x``."""
    gates = x @ w["w_ih"].T + h @ w["w_hh"].T + w["b_ih"] + w["b_hh"]
    i_pre, f_pre, g_pre, o_pre = np.split(gates, 4, axis=1)
    i, f, o, g = _sigmoid(i_pre), _sigmoid(f_pre), _sigmoid(o_pre), np.tanh(g_pre)
    c_new = f * c + i * g
    tc = np.tanh(c_new)
    head = w["w_head"].reshape(-1)
    logit = (o * tc) @ head + float(np.asarray(w["b_head"]).reshape(-1)[0])
    d_o = head * tc * o * (1.0 - o)
    d_c = head * o * (1.0 - tc * tc)
    d_i = d_c * g * i * (1.0 - i)
    d_f = d_c * c * f * (1.0 - f)
    d_g = d_c * i * (1.0 - g * g)
    return logit, np.concatenate([d_i, d_f, d_g, d_o], axis=1) @ w["w_ih"]


def integrated_gradients(
    w: Weights,
    x: np.ndarray,
    state: tuple[np.ndarray, np.ndarray] | None = None,
    steps: int = STEPS,
) -> np.ndarray:
    """(rows, features + 1): each row's attributions, then ``f(baseline)`` (bias, last).

    ``state`` = ``(h, c)`` rows (n, H) selects the LSTM step, ``None`` the MLP. The
    baseline is 0 (the standardised training mean).
    """
    x = np.asarray(x, dtype=np.float64)
    n, width = x.shape
    m = max(1, int(steps))
    alphas = (np.arange(m) + 0.5) / m
    path = (alphas[None, :, None] * x[:, None, :]).reshape(n * m, width)
    if state is None:
        _, grad = mlp_logit_grad(w, path)
        base, _ = mlp_logit_grad(w, np.zeros((n, width)))
    else:
        h = np.asarray(state[0], dtype=np.float64)
        c = np.asarray(state[1], dtype=np.float64)
        _, grad = lstm_logit_grad(w, path, np.repeat(h, m, axis=0), np.repeat(c, m, axis=0))
        base, _ = lstm_logit_grad(w, np.zeros((n, width)), h, c)
    attributions = x * grad.reshape(n, m, width).mean(axis=1)
    return np.concatenate([attributions, base[:, None]], axis=1)


def logit(
    w: Weights, x: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """The network's logit at each row (the MLP, or one LSTM step from ``state``)."""
    x = np.asarray(x, dtype=np.float64)
    if state is None:
        return mlp_logit_grad(w, x)[0]
    return lstm_logit_grad(
        w, x, np.asarray(state[0], np.float64), np.asarray(state[1], np.float64)
    )[0]


__all__ = ["LSTM_KEYS", "MLP_KEYS", "STEPS", "integrated_gradients", "logit"]
