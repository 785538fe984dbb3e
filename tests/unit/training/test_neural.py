"""PyTorch MLP and LSTM through ONNX: torch trains in its own interpreter, ONNX Runtime scores.

Torch is Debian's ``python3-torch`` (``scripts/install-system-deps.sh``); without it these
tests fail, they do not skip. Tiny data and epochs keep them at a few seconds each.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from agents.scoring import ModelSet, Scorer
from training.champion import PackagedModel, ScoringModel
from training.neural import TOLERANCE, LSTMModel, MLPModel

FSV = "test-fsv"


def data(n: int = 300, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n * len(symbols), 4)), columns=["a", "b", "c", "d"])
    frame.loc[:5, "a"] = np.nan  # warm-up gaps
    frame["symbol"] = np.repeat(symbols, n)
    frame["ts_ms"] = np.tile(np.arange(n) * 60_000, len(symbols))
    return frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def labels(frame: pd.DataFrame) -> np.ndarray:
    noise = np.random.default_rng(1).normal(size=len(frame))
    return (frame["b"].fillna(0).to_numpy() + 0.5 * noise > 0).astype(int)


@pytest.fixture(scope="module")
def mlp() -> MLPModel:
    frame = data()
    return MLPModel(hidden=8, epochs=4).fit(frame[["a", "b", "c", "d"]], labels(frame))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def lstm() -> LSTMModel:
    frame = data()
    cols = ["symbol", "ts_ms", "a", "b", "c", "d"]
    return LSTMModel(hidden=6, epochs=2, chunk=16).fit(frame[cols], labels(frame))  # type: ignore[return-value]


def test_mlp_graph_matches_torch_and_learns(mlp: MLPModel) -> None:
    assert mlp.max_deviation <= TOLERANCE
    frame = data()
    prob = mlp.predict_proba(frame[["a", "b", "c", "d"]])
    assert prob.shape == (len(frame),)
    assert np.isfinite(prob).all()
    assert np.corrcoef(prob, frame["b"].fillna(0))[0, 1] > 0.5  # it found the planted signal


def test_mlp_training_is_deterministic(mlp: MLPModel) -> None:
    frame = data()
    again = MLPModel(hidden=8, epochs=4).fit(frame[["a", "b", "c", "d"]], labels(frame))
    assert isinstance(again, MLPModel)
    assert again.graph == mlp.graph


def test_packaged_mlp_scores_on_the_onnx_path_after_pickling(mlp: MLPModel) -> None:
    packaged = PackagedModel("mlp", mlp, ("a", "b", "c", "d"), FSV, 1, 0.01)
    restored = pickle.loads(pickle.dumps(packaged))
    assert restored.prepare() == "onnx"
    features = data()[["a", "b", "c", "d"]]
    X = features.to_numpy()
    np.testing.assert_allclose(restored.predict_proba(X), mlp.predict_proba(features))
    assert restored.predict_proba(X[:0]).shape == (0,)


def test_lstm_cell_graph_matches_torch_sequence(lstm: LSTMModel) -> None:
    # fit() compared the ONNX cell, stepped over a sequence, with nn.LSTM on the whole sequence
    assert lstm.max_deviation <= TOLERANCE


def test_lstm_live_steps_equal_the_offline_sequence_evaluation(lstm: LSTMModel) -> None:
    frame = data()
    offline = lstm.predict_proba(frame[["symbol", "ts_ms", "a", "b", "c", "d"]])
    packaged = PackagedModel("lstm", lstm, ("a", "b", "c", "d"), FSV, 1, 0.01)
    model = ScoringModel.from_packaged(packaged, name="m", version=3, role="champion")
    assert model.stateful
    scorer = Scorer(ModelSet(champion=model), FSV)
    extras: dict[str, dict[str, object]] = {}
    live: list[float] = []
    rows = [
        {"symbol": s, "ts": int(t), "feature_set_version": FSV, "values": list(v)}
        for s, t, v in zip(frame["symbol"], frame["ts_ms"],
                           frame[["a", "b", "c", "d"]].to_numpy(), strict=True)
    ]  # fmt: skip
    # uneven micro-batches, a symbol several times in one batch, a checkpoint between batches
    for lo, hi in [(0, 1), (1, 7), (7, 8), (8, 400), (400, len(rows))]:
        for row in rows[lo:hi]:
            extras.setdefault(row["symbol"], {})
        batch = scorer.score_batch(rows[lo:hi], 0, extras)  # type: ignore[arg-type]
        assert not batch.failures
        live.extend(p["prob_up"] for p in batch.predictions)
        extras = pickle.loads(pickle.dumps(extras))
    np.testing.assert_allclose(live, offline, rtol=0, atol=1e-6)
    assert set(extras["AAA"]) == {model.state_key}
    state: tuple[np.ndarray, np.ndarray] = extras["AAA"][model.state_key]  # type: ignore[assignment]
    h, c = state
    assert h.shape == c.shape == (6,)


def test_worker_and_api_never_import_torch(mlp: MLPModel, tmp_path: pytest.TempPathFactory) -> None:
    path = f"{tmp_path}/mlp.pkl"
    with open(path, "wb") as fh:
        pickle.dump(PackagedModel("mlp", mlp, ("a", "b", "c", "d"), FSV, 1, 0.01), fh)
    code = textwrap.dedent(f"""
        import pickle, sys
        import numpy as np
        import agents.worker, agents.predictions, agents.scoring, serving.main
        import training.neural, training.arima, training.registry
        with open({path!r}, "rb") as fh:
            model = pickle.load(fh)
        assert model.predict_proba(np.zeros((3, 4))).shape == (3,)
        print("torch" in sys.modules, "onnxruntime" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]
