"""PyTorch MLP and LSTM direction models, trained by torch in a subprocess, scored by ONNX Runtime.

tickcast's own processes never import torch: :meth:`NeuralModel.fit` standardises the
features, writes a job file and runs :mod:`training.torch_job` with the torch interpreter
(``Settings.torch_python``, Debian's ``python3-torch``); the job trains, exports the ONNX
graph and returns it with torch's outputs on probe rows. The graph is accepted only when ONNX
Runtime reproduces those outputs within :data:`TOLERANCE` (float32 graphs); the model keeps the
graph's bytes (it pickles into the registry like any model) and scores with ``onnxruntime``.

* :class:`MLPModel`: one ``InferenceSession.run`` per matrix.
* :class:`LSTMModel`: the graph is ONE step of the recurrent cell (``x_t, h, c -> P(up), h',
  c'``). :meth:`LSTMModel.step` advances each symbol's ``(h, c)`` by one tick, batched across
  the symbols of a micro-batch (a symbol seen twice in a batch goes in two successive calls);
  the scorer keeps the state in the symbol's checkpointed state. Offline,
  :meth:`LSTMModel.predict_proba` runs the same steps over each symbol's rows in time order,
  so a live prediction equals the offline sequence evaluation.

Inputs: each feature is standardised with the training mean and standard deviation, missing
values (warm-up) become 0 (the mean), and values are clipped to ±:data:`CLIP`.
"""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import integrated_gradients as ig
from training.errors import TrainingError
from training.models import Model

TOLERANCE = 1e-5
"""Largest |ONNX Runtime − torch| P(up) accepted on the probe rows (float32 arithmetic)."""
CLIP = 10.0
KEYS = ("symbol", "ts_ms")
_JOB = Path(__file__).with_name("torch_job.py")


def torch_python() -> str:
    """The interpreter that has torch (``Settings.torch_python``)."""
    from tickcast.config import load_settings

    return load_settings().torch_python


def run_job(job: dict[str, Any], python: str | None = None, timeout_s: float = 3600.0) -> Any:
    """Run :mod:`training.torch_job` on ``job``; its result arrays (``onnx``, ``expected``)."""
    interpreter = python or torch_python()
    with tempfile.TemporaryDirectory(prefix="tickcast-torch-") as tmp:
        job_path, result_path = Path(tmp) / "job.npz", Path(tmp) / "result.npz"
        np.savez(job_path, **job)
        try:
            done = subprocess.run(
                [interpreter, str(_JOB), str(job_path), str(result_path)],
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrainingError("torch_unavailable", f"{interpreter}: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-2000:]
            raise TrainingError("torch_job_failed", f"{interpreter} {_JOB.name}: {tail}")
        with np.load(result_path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}


def session(graph: bytes) -> Any:
    """A single-threaded CPU ``InferenceSession`` (a worker is one process per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class NeuralModel(Model):
    """Shared parts: standardisation, the torch job, the ONNX session (not pickled)."""

    kind = "neural"

    def __init__(
        self,
        seed: int = 0,
        hidden: int = 32,
        epochs: int = 20,
        lr: float = 1e-3,
        batch: int = 256,
        python: str | None = None,
    ) -> None:
        super().__init__()
        self.name = self.kind
        self.params: dict[str, Any] = {
            "seed": seed, "hidden": hidden, "epochs": epochs, "lr": lr, "batch": batch,
        }  # fmt: skip
        self.python = python
        self.graph: bytes = b""
        self.mean = np.zeros(0)
        self.scale = np.ones(0)
        self.max_deviation = float("nan")
        self.torch_version = ""
        self.weights: dict[str, np.ndarray] = {}
        self.ig_steps = ig.STEPS
        self._session: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_session"] = None  # rebuilt from the graph bytes on first use
        state.pop("_last_step", None)  # the LSTM's last batch of pre-step states
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("weights", {})  # registered before the weights were exported
        state.setdefault("ig_steps", ig.STEPS)
        self.__dict__.update(state)

    def _standardiser(self, X: np.ndarray) -> None:
        finite = np.where(np.isfinite(X), X, np.nan)
        with warnings.catch_warnings():  # all-missing columns (quotes on daily bars) -> 0, 1
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(finite, axis=0), np.nanstd(finite, axis=0)
        self.mean = np.nan_to_num(mean, nan=0.0)
        self.scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)

    def standardise(self, X: np.ndarray) -> np.ndarray:
        """Float32 inputs of the graph: z-scores, missing -> 0, clipped to ±CLIP."""
        with np.errstate(all="ignore"):
            z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        z = np.nan_to_num(z, nan=0.0, posinf=CLIP, neginf=-CLIP)
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    @property
    def session(self) -> Any:
        """The ONNX Runtime session of the graph."""
        if self._session is None:
            if not self.graph:
                raise TrainingError("not_fitted", f"{self.name} has no graph")
            self._session = session(self.graph)
        return self._session

    def _accept(self, result: Any, measured: np.ndarray) -> None:
        expected = np.asarray(result["expected"], dtype=np.float64)
        deviation = float(np.max(np.abs(measured - expected))) if expected.size else 0.0
        if not deviation <= TOLERANCE:
            raise TrainingError(
                "onnx_mismatch", f"{self.name}: ONNX differs from torch by {deviation:.3g}"
            )
        self.max_deviation = deviation
        self.torch_version = str(result["torch_version"])
        self.weights = {
            key.removeprefix("weight_"): np.asarray(value, dtype=np.float64)
            for key, value in result.items()
            if key.startswith("weight_")
        }

    def _check_weights(self, logits: np.ndarray, measured: np.ndarray) -> None:
        """Keep the weights only when numpy's forward pass reproduces the graph (else no
        explanations, logged by the caller's ``None``)."""
        with np.errstate(all="ignore"):
            prob = 1.0 / (1.0 + np.exp(-logits))
        if not float(np.max(np.abs(prob - measured), initial=0.0)) <= TOLERANCE:
            self.weights = {}

    @property
    def explainable(self) -> bool:
        """Whether :meth:`contributions` can explain (the torch job exported the weights)."""
        return bool(self.weights)


def _features(X: pd.DataFrame) -> pd.DataFrame:
    return X.drop(columns=[k for k in KEYS if k in X.columns])


class MLPModel(NeuralModel):
    """Two hidden ReLU layers, binary cross-entropy, Adam; scored as ONE ONNX call per matrix."""

    kind = "mlp"

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> None:
        values = _features(X).to_numpy(dtype=np.float64)
        self._standardiser(values)
        inputs = self.standardise(values)
        probe = inputs[np.linspace(0, len(inputs) - 1, min(len(inputs), 256)).astype(int)]
        job = {"kind": np.array("mlp"), "X": inputs, "y": y.astype(np.float32), "probe": probe}
        job.update({k: np.array(v) for k, v in self.params.items()})
        result = run_job(job, self.python)
        self.graph, self._session = result["onnx"].tobytes(), None
        measured = self.predict_matrix(probe, standardised=True)
        self._accept(result, measured)
        if self.weights:
            self._check_weights(ig.logit(self.weights, probe), measured)

    def predict_matrix(self, X: np.ndarray, *, standardised: bool = False) -> np.ndarray:
        """P(up) of every row of a features matrix (feature order), one ONNX call."""
        inputs = X.astype(np.float32) if standardised else self.standardise(X)
        if inputs.shape[0] == 0:
            return np.empty(0)
        (prob,) = self.session.run(["prob"], {"x": inputs})
        return np.asarray(prob, dtype=np.float64).reshape(-1)

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(_features(X).to_numpy(dtype=np.float64))

    def contributions(self, X: np.ndarray) -> np.ndarray | None:
        """Integrated gradients of each row's logit (:mod:`training.integrated_gradients`):
        (rows, features + 1), the baseline's logit last; ``None`` without weights."""
        if not self.weights:
            return None
        return ig.integrated_gradients(self.weights, self.standardise(X), None, self.ig_steps)


LSTMState = tuple[np.ndarray, np.ndarray]
"""One symbol's ``(h, c)``, float32 vectors of the hidden size."""


class LSTMModel(NeuralModel):
    """One-layer LSTM per symbol sequence; scored one step per tick from the symbol's state.

    Training rows must carry ``symbol`` and ``ts_ms`` (:data:`sequence_keys`): the
    walk-forward passes them, and each symbol's rows become one sequence in time order.
    """

    kind = "lstm"
    sequence_keys = KEYS

    def __init__(self, seed: int = 0, hidden: int = 16, chunk: int = 32, **params: Any) -> None:
        super().__init__(seed=seed, hidden=hidden, **params)
        self.params["chunk"] = chunk
        self._last_step: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> None:
        if not set(KEYS) <= set(X.columns):
            raise TrainingError("missing_keys", "the LSTM trains on rows with symbol and ts_ms")
        order = np.lexsort((X["ts_ms"].to_numpy(), X["symbol"].to_numpy()))
        frame = X.iloc[order]
        values = _features(frame).to_numpy(dtype=np.float64)
        self._standardiser(values)
        inputs = self.standardise(values)
        _, lengths = np.unique(frame["symbol"].to_numpy(), return_counts=True)
        probe = inputs[: min(int(lengths[0]), 200)]
        job = {
            "kind": np.array("lstm"), "X": inputs, "y": y[order].astype(np.float32),
            "lengths": lengths.astype(np.int64), "probe": probe,
        }  # fmt: skip
        job.update({k: np.array(v) for k, v in self.params.items()})
        result = run_job(job, self.python)
        self.graph, self._session = result["onnx"].tobytes(), None
        states: dict[str, LSTMState] = {}
        measured, before = [], []
        for row in probe:
            before.append(_state(states.get("probe"), np.zeros(self.hidden, np.float32)))
            measured.append(self.step(row[None, :], ["probe"], states, standardised=True)[0])
        self._accept(result, np.asarray(measured))
        if self.weights:
            h, c = (np.stack([b[i] for b in before]) for i in (0, 1))
            self._check_weights(ig.logit(self.weights, probe, (h, c)), np.asarray(measured))

    @property
    def hidden(self) -> int:
        """The size of ``h`` and ``c``."""
        return int(self.params["hidden"])

    def step(
        self,
        X: np.ndarray,
        symbols: Sequence[str],
        states: MutableMapping[str, Any],
        *,
        standardised: bool = False,
    ) -> np.ndarray:
        """P(up) of each row, advancing its symbol's ``(h, c)`` in ``states`` by one step.

        Rows are in stream order; a symbol's k-th row of the batch goes in the k-th ONNX call,
        so each call holds each symbol at most once. A missing or malformed state starts
        from zeros (a symbol this model has not seen yet).
        """
        inputs = X.astype(np.float32) if standardised else self.standardise(X)
        prob = np.empty(len(symbols))
        waves: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, symbol in enumerate(symbols):
            k = seen.get(symbol, 0)
            seen[symbol] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(i)
        zeros = np.zeros(self.hidden, np.float32)
        before_h = np.empty((len(symbols), self.hidden), np.float32)
        before_c = np.empty((len(symbols), self.hidden), np.float32)
        for wave in waves:
            h = np.empty((len(wave), self.hidden), np.float32)
            c = np.empty((len(wave), self.hidden), np.float32)
            for j, i in enumerate(wave):
                h[j], c[j] = _state(states.get(symbols[i]), zeros)
            p, h_out, c_out = self.session.run(
                ["prob", "h_out", "c_out"], {"x": inputs[wave], "h": h, "c": c}
            )
            for j, i in enumerate(wave):
                states[symbols[i]] = (h_out[j].copy(), c_out[j].copy())
            prob[wave] = np.asarray(p, dtype=np.float64).reshape(-1)
            before_h[wave], before_c[wave] = h, c
        self._last_step = (inputs, before_h, before_c)
        return prob

    def contributions(self, X: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray | None:
        """Integrated gradients of the logit of the last :meth:`step` call's rows ``rows``
        (all when ``None``) with respect to their tick's input, each from its symbol's
        ``(h, c)`` before that step (:mod:`training.integrated_gradients`): (rows, features
        + 1), the baseline's logit last. ``X`` must be those rows' features (checked);
        ``None`` without weights or without a step to explain.
        """
        last = getattr(self, "_last_step", None)
        if not self.weights or last is None:
            return None
        inputs, h, c = last
        pick = np.arange(len(inputs)) if rows is None else np.asarray(rows, dtype=np.int64)
        if not np.array_equal(self.standardise(X), inputs[pick]):
            raise TrainingError("stale_step", "the rows to explain are not the last step's")
        return ig.integrated_gradients(self.weights, inputs[pick], (h[pick], c[pick]),
                                       self.ig_steps)  # fmt: skip

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        """Each symbol's rows as one sequence from zeros, in time order (no keys: every row
        is one step from zeros)."""
        values = _features(X).to_numpy(dtype=np.float64)
        if not set(KEYS) <= set(X.columns):
            return self.step(values, [str(i) for i in range(len(X))], {})
        order = np.lexsort((X["symbol"].to_numpy(), X["ts_ms"].to_numpy()))
        symbols = X["symbol"].to_numpy()[order].tolist()
        prob = np.empty(len(X))
        prob[order] = self.step(values[order], symbols, {})
        return prob


def _state(value: Any, zeros: np.ndarray) -> LSTMState:
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, np.ndarray) and v.shape == zeros.shape for v in value)
    ):
        return value[0], value[1]
    return zeros, zeros


def _python_of(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "n_estimators"}


def mlp_model(seed: int = 0, **params: Any) -> MLPModel:
    """The MLP with tickcast's defaults (hidden 32, 20 epochs, Adam 1e-3, batches of 256)."""
    return MLPModel(seed=seed, **_python_of(params))


def lstm_model(seed: int = 0, **params: Any) -> LSTMModel:
    """The LSTM with tickcast's defaults (hidden 16, 20 epochs, BPTT chunks of 32)."""
    return LSTMModel(seed=seed, **_python_of(params))


__all__ = ["LSTMModel", "MLPModel", "lstm_model", "mlp_model", "run_job", "session"]
