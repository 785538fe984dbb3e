"""Integrated gradients of the small PyTorch networks, in numpy (pure maths, no torch).

Integrated gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep
Networks", ICML 2017) attribute ``f(x) − f(x')`` to the inputs::

    IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂f/∂x_i (x' + α (x − x')) dα

tickcast's ``f`` is the network's **logit** (log-odds of P(up), the margin units of the
tree models' TreeSHAP), ``x`` the graph's standardised input and the baseline ``x'`` = 0,
i.e. every feature at its training mean (also what a missing value becomes). The integral is
the midpoint rule over ``m`` steps (α = (k + ½)/m), all steps of all rows in ONE batched
forward and backward pass (the first layer's product once per row). **Completeness**: the
attributions of a row sum to ``f(x) − f(x')`` up to the quadrature error (exact for a
network that is linear along the path, O(1/m²) for a smooth one, a few kinks of the MLP's
ReLUs per path otherwise); the returned rows carry ``f(x')`` as their last (*bias*) column,
so a row sums to ≈ ``f(x)``, like a TreeSHAP row sums to the margin.

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


def _mlp_backward(w: Weights, a1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logit, ∂logit/∂a1) from the first layer's pre-activations ``a1`` (…, H)."""
    h1 = np.maximum(a1, 0.0)
    a2 = h1 @ w["w2"].T + w["b2"]
    head = w["w3"].reshape(-1)
    logit = np.maximum(a2, 0.0) @ head + float(np.asarray(w["b3"]).reshape(-1)[0])
    return logit, ((head * (a2 > 0)) @ w["w2"]) * (a1 > 0)


def _lstm_backward(w: Weights, gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logit, ∂logit/∂gates) of one step from the gate pre-activations (…, 4H) and ``c``."""
    i_pre, f_pre, g_pre, o_pre = np.split(gates, 4, axis=-1)
    i, f, o, g = _sigmoid(i_pre), _sigmoid(f_pre), _sigmoid(o_pre), np.tanh(g_pre)
    tc = np.tanh(f * c + i * g)
    head = w["w_head"].reshape(-1)
    logit = (o * tc) @ head + float(np.asarray(w["b_head"]).reshape(-1)[0])
    d_c = head * o * (1.0 - tc * tc)
    d_gates = [d_c * g * i * (1.0 - i), d_c * c * f * (1.0 - f), d_c * i * (1.0 - g * g),
               head * tc * o * (1.0 - o)]  # fmt: skip
    return logit, np.concatenate(d_gates, axis=-1)


def mlp_logit_grad(w: Weights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logit (n,), ∂logit/∂x (n, f)) of the MLP at each row of ``x``."""
    logit, d_a1 = _mlp_backward(w, x @ w["w1"].T + w["b1"])
    return logit, d_a1 @ w["w1"]


def lstm_logit_grad(
    w: Weights, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(logit (n,), ∂logit/∂x (n, f)) of one LSTM step from ``(h, c)`` at each row of ``x``."""
    gates = x @ w["w_ih"].T + h @ w["w_hh"].T + w["b_ih"] + w["b_hh"]
    logit, d_gates = _lstm_backward(w, gates, c)
    return logit, d_gates @ w["w_ih"]


def integrated_gradients(
    w: Weights,
    x: np.ndarray,
    state: tuple[np.ndarray, np.ndarray] | None = None,
    steps: int = STEPS,
) -> np.ndarray:
    """(rows, features + 1): each row's attributions, then ``f(baseline)`` (bias, last).

    ``state`` = ``(h, c)`` rows (n, H) selects the LSTM step, ``None`` the MLP. The
    baseline is 0 (the standardised training mean). The first layer is linear in the
    input, so along the path its pre-activations are ``α · (x Wᵀ) + rest`` (one product per
    row, not per step) and the mean gradient is ``mean_α(∂f/∂pre) · W``.
    """
    x = np.asarray(x, dtype=np.float64)
    m = max(1, int(steps))
    alphas = ((np.arange(m) + 0.5) / m)[None, :, None]
    if state is None:
        projected, rest, weight = x @ w["w1"].T, w["b1"][None, :], w["w1"]
        _, d_pre = _mlp_backward(w, alphas * projected[:, None, :] + rest[:, None, :])
        base, _ = _mlp_backward(w, np.broadcast_to(rest, projected.shape))
    else:
        h = np.asarray(state[0], dtype=np.float64)
        c = np.asarray(state[1], dtype=np.float64)
        projected, weight = x @ w["w_ih"].T, w["w_ih"]
        rest = h @ w["w_hh"].T + w["b_ih"] + w["b_hh"]
        pre = alphas * projected[:, None, :] + rest[:, None, :]
        _, d_pre = _lstm_backward(w, pre, c[:, None, :])
        base, _ = _lstm_backward(w, rest, c)
    attributions = x * (d_pre.mean(axis=1) @ weight)
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
