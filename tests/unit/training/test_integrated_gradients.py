"""Integrated gradients of the MLP and the LSTM step (training.integrated_gradients).

References: central finite differences of the numpy logit (pure maths), and torch's own
autograd on networks built from the exported weights, run by the torch interpreter
(Debian's ``python3-torch``, as in test_neural.py; without it these tests fail).
"""

from __future__ import annotations

import pickle
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agents.scoring import ModelSet, Scorer
from tests.unit.training.test_neural import FSV, data, labels
from training import integrated_gradients as ig
from training.champion import PackagedModel, ScoringModel
from training.explain import explanations
from training.neural import LSTMModel, MLPModel, torch_python

F, H = 5, 4


def _mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(size=(H, F)), "b1": rng.normal(size=H),
        "w2": rng.normal(size=(H, H)), "b2": rng.normal(size=H),
        "w3": rng.normal(size=(1, H)), "b3": rng.normal(size=1),
    }  # fmt: skip


def _lstm_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w_ih": rng.normal(size=(4 * H, F)), "w_hh": rng.normal(size=(4 * H, H)),
        "b_ih": rng.normal(size=4 * H), "b_hh": rng.normal(size=4 * H),
        "w_head": rng.normal(size=(1, H)), "b_head": rng.normal(size=1),
    }  # fmt: skip


def _finite_difference(f: object, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.empty_like(x)
    for j in range(x.shape[1]):
        step = np.zeros_like(x)
        step[:, j] = eps
        grad[:, j] = (f(x + step) - f(x - step)) / (2 * eps)  # type: ignore[operator]
    return grad


def test_gradients_equal_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, F))
    h, c = rng.normal(size=(7, H)), rng.normal(size=(7, H))
    w = _mlp_weights()
    np.testing.assert_allclose(
        ig.mlp_logit_grad(w, x)[1], _finite_difference(lambda z: ig.logit(w, z), x), atol=1e-6
    )
    v = _lstm_weights()
    np.testing.assert_allclose(
        ig.lstm_logit_grad(v, x, h, c)[1],
        _finite_difference(lambda z: ig.logit(v, z, (h, c)), x),
        atol=1e-6,
    )


def test_completeness_attributions_sum_to_the_logit_difference() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, F))
    h, c = rng.normal(size=(20, H)), rng.normal(size=(20, H))
    v = _lstm_weights()
    for steps, tol in ((32, 5e-3), (256, 1e-4)):  # the midpoint rule's error falls as 1/m²
        rows = ig.integrated_gradients(v, x, (h, c), steps)
        gap = rows[:, :-1].sum(axis=1) - (ig.logit(v, x, (h, c)) - rows[:, -1])
        assert np.max(np.abs(gap)) < tol * max(1.0, float(np.max(np.abs(rows[:, -1]))))
        np.testing.assert_allclose(rows[:, -1], ig.logit(v, np.zeros_like(x), (h, c)))
    w = _mlp_weights()
    rows = ig.integrated_gradients(w, x, None, 2048)  # ReLU kinks: first order in 1/m
    gap = rows[:, :-1].sum(axis=1) + rows[:, -1] - ig.logit(w, x)
    assert np.max(np.abs(gap)) < 5e-2
    assert not np.allclose(rows[:, :-1], 0)


def test_a_feature_the_network_ignores_gets_nothing() -> None:
    w = _mlp_weights()
    w["w1"][:, 2] = 0.0
    rows = ig.integrated_gradients(w, np.random.default_rng(5).normal(size=(6, F)))
    assert np.all(rows[:, 2] == 0.0)


_TORCH_IG = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    data = dict(np.load(sys.argv[1]))
    w = {k[2:]: torch.tensor(v, dtype=torch.float64) for k, v in data.items() if k[:2] == "w_"}
    x = torch.tensor(data["x"], dtype=torch.float64)
    m = int(data["steps"])
    alphas = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    if "h" in data:
        h = torch.tensor(data["h"], dtype=torch.float64)
        c = torch.tensor(data["c"], dtype=torch.float64)
        cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).double()
        head = torch.nn.Linear(h.shape[1], 1).double()
        with torch.no_grad():
            cell.weight_ih.copy_(w["w_ih"]); cell.weight_hh.copy_(w["w_hh"])
            cell.bias_ih.copy_(w["b_ih"]); cell.bias_hh.copy_(w["b_hh"])
            head.weight.copy_(w["w_head"]); head.bias.copy_(w["b_head"])
        f = lambda z: head(cell(z, (h, c))[0]).squeeze(-1)
    else:
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], w["w1"].shape[0]), torch.nn.ReLU(),
            torch.nn.Linear(w["w2"].shape[1], w["w2"].shape[0]), torch.nn.ReLU(),
            torch.nn.Linear(w["w3"].shape[1], 1)).double()
        with torch.no_grad():
            for i, k in ((0, "1"), (2, "2"), (4, "3")):
                net[i].weight.copy_(w["w" + k]); net[i].bias.copy_(w["b" + k])
        f = lambda z: net(z).squeeze(-1)
    total = torch.zeros_like(x)
    for a in alphas:
        z = (a * x).clone().requires_grad_(True)
        f(z).sum().backward()
        total += z.grad
    out = torch.cat([x * total / m, f(torch.zeros_like(x)).detach()[:, None]], dim=1)
    np.save(sys.argv[2], out.detach().numpy())
""")


def _torch_ig(tmp_path: Path, weights: dict[str, np.ndarray], x: np.ndarray,
              state: tuple[np.ndarray, np.ndarray] | None, steps: int) -> np.ndarray:  # fmt: skip
    job = {f"w_{k}": v for k, v in weights.items()} | {"x": x, "steps": np.array(steps)}
    if state is not None:
        job |= {"h": np.asarray(state[0], np.float64), "c": np.asarray(state[1], np.float64)}
    np.savez(tmp_path / "job.npz", **job)  # type: ignore[arg-type]
    done = subprocess.run(
        [torch_python(), "-c", _TORCH_IG, str(tmp_path / "job.npz"), str(tmp_path / "out.npy")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(tmp_path / "out.npy")


@pytest.fixture(scope="module")
def mlp() -> MLPModel:
    frame = data()
    return MLPModel(hidden=8, epochs=4).fit(frame[["a", "b", "c", "d"]], labels(frame))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def lstm() -> LSTMModel:
    frame = data()
    cols = ["symbol", "ts_ms", "a", "b", "c", "d"]
    return LSTMModel(hidden=6, epochs=2, chunk=16).fit(frame[cols], labels(frame))  # type: ignore[return-value]


def test_mlp_attributions_equal_torch_autograd(mlp: MLPModel, tmp_path: Path) -> None:
    assert set(mlp.weights) == set(ig.MLP_KEYS)
    X = data()[["a", "b", "c", "d"]].to_numpy()[:50]
    ours = mlp.contributions(X)
    assert ours is not None
    theirs = _torch_ig(tmp_path, mlp.weights, mlp.standardise(X).astype(np.float64), None,
                       mlp.ig_steps)  # fmt: skip
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # the bias column is the baseline's logit; a row sums to about the logit of P(up)
    prob = mlp.predict_matrix(X)
    np.testing.assert_allclose(ours.sum(axis=1), np.log(prob / (1 - prob)), atol=0.05)


def test_lstm_attributions_from_the_pre_step_state_equal_torch(
    lstm: LSTMModel, tmp_path: Path
) -> None:
    assert set(lstm.weights) == set(ig.LSTM_KEYS)
    frame = data()
    X = frame[["a", "b", "c", "d"]].to_numpy()[:60]
    symbols = frame["symbol"].tolist()[:60]
    states: dict[str, object] = {}
    lstm.step(X[:30], symbols[:30], states)  # states that are not zeros
    prob = lstm.step(X[30:], symbols[30:], states)
    ours = lstm.contributions(X[30:])
    assert ours is not None
    _, h, c = lstm._last_step  # type: ignore[misc]
    assert np.abs(h).max() > 0
    theirs = _torch_ig(tmp_path, lstm.weights, lstm.standardise(X[30:]).astype(np.float64),
                       (h, c), lstm.ig_steps)  # fmt: skip
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    np.testing.assert_allclose(ours.sum(axis=1), np.log(prob / (1 - prob)), atol=1e-3)
    some = lstm.contributions(X[[31, 40]], [1, 10])
    np.testing.assert_allclose(some, ours[[1, 10]])  # type: ignore[arg-type]
    with pytest.raises(Exception, match="last step"):
        lstm.contributions(X[[31, 40]], [2, 10])


def test_an_lstm_champion_explains_each_prediction_from_its_state(lstm: LSTMModel) -> None:
    frame = data()
    cols = ["a", "b", "c", "d"]
    packaged = pickle.loads(pickle.dumps(PackagedModel("lstm", lstm, tuple(cols), FSV, 1, 0.01)))
    assert packaged.explainable
    model = ScoringModel.from_packaged(packaged, name="m", version=1, role="champion")
    scorer = Scorer(ModelSet(champion=model), FSV, explain_top_k=2)
    rows = [
        {"symbol": s, "ts": int(t), "feature_set_version": FSV, "values": list(v)}
        for s, t, v in zip(frame["symbol"], frame["ts_ms"], frame[cols].to_numpy(), strict=True)
    ][:200]
    extras: dict[str, dict[str, object]] = {s: {} for s in set(frame["symbol"])}
    got = []
    for lo, hi in [(0, 5), (5, 6), (6, 200)]:  # symbols repeat within a batch
        batch = scorer.score_batch(rows[lo:hi], 0, extras)  # type: ignore[arg-type]
        assert not batch.failures
        got += [(p["explanation_features"], p["explanation_contributions"])
                for p in batch.predictions]  # fmt: skip
    # reference: each row alone, one step at a time, from the state before it
    states: dict[str, object] = {}
    for row, (names, values) in zip(rows, got, strict=True):
        x = np.array([row["values"]], dtype=np.float64)
        lstm.step(x, [row["symbol"]], states)
        ((want_names, want_values),) = explanations(lstm.contributions(x), cols, 2)  # type: ignore[arg-type]
        assert names == want_names
        assert values is not None
        np.testing.assert_allclose(np.asarray(values), np.asarray(want_values), atol=1e-9)


def test_a_network_pickled_before_the_weights_were_exported_scores_unexplained(
    mlp: MLPModel,
) -> None:
    state = mlp.__getstate__()
    del state["weights"], state["ig_steps"]
    old = MLPModel.__new__(MLPModel)
    old.__setstate__(state)
    packaged = pickle.loads(
        pickle.dumps(PackagedModel("mlp", old, ("a", "b", "c", "d"), FSV, 1, 0.01))
    )
    X = data()[["a", "b", "c", "d"]].to_numpy()[:5]
    assert not packaged.explainable
    assert packaged.contributions(X) is None
    assert packaged.predict_proba(X).shape == (5,)
