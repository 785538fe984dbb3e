"""Train one PyTorch model and export it to ONNX: run by the torch interpreter, never imported.

tickcast's environment has no torch (PyPI's wheel needs GB of CUDA runtime wheels); Debian's
``python3-torch`` (``scripts/install-system-deps.sh``) runs this file as a subprocess::

    /usr/bin/python3 training/torch_job.py job.npz result.npz

so it imports only the standard library, numpy and torch (Debian's builds, whatever their
versions) and nothing of tickcast. :mod:`training.neural` writes the job and reads the result.

Job (``.npz``): ``kind`` (``mlp`` | ``lstm``), ``X`` (rows × features, float32, already
standardised, no NaN), ``y`` (0/1), ``hidden``, ``epochs``, ``lr``, ``seed``, ``batch``, and
``probe`` (rows × features). For the LSTM, rows are grouped by sequence in time order and
``lengths`` gives each sequence's number of rows; ``chunk`` is the truncated-BPTT length.

Result: ``onnx`` (the graph's bytes as uint8), ``expected`` (torch's own outputs on the
probe, for the caller's check of the exported graph: the MLP's P(up) per probe row; for the
LSTM the probe is ONE sequence and ``expected`` is ``nn.LSTM``'s P(up) at every step of it,
the full-sequence evaluation that the exported one-step cell must reproduce step by step)
and ``weight_<name>`` (the parameters as float64, for the worker's integrated gradients in
numpy, :mod:`training.integrated_gradients`).

Graphs: MLP ``x[n, f] -> prob[n]``; LSTM cell ``x[n, f], h[n, H], c[n, H] -> prob[n], h_out,
c_out`` (opset 13, dynamic batch). Determinism: seeded, one thread, deterministic kernels.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import numpy as np
import torch  # type: ignore[import-not-found, unused-ignore]
from torch import nn  # type: ignore[import-not-found, unused-ignore]

OPSET = 13


class MLP(nn.Module):  # type: ignore[misc, unused-ignore]
    """features -> hidden -> hidden -> P(up)."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Any) -> Any:
        return self.net(x).squeeze(-1)


class Recurrent(nn.Module):  # type: ignore[misc, unused-ignore]
    """One-layer LSTM over a sequence and a logistic head on each step's hidden state."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Any, state: Any = None) -> tuple[Any, Any]:
        out, state = self.lstm(x, state)
        return self.head(out).squeeze(-1), state


class Cell(nn.Module):  # type: ignore[misc, unused-ignore]
    """The exported step: the LSTM's weights in an ``LSTMCell`` (same i, f, g, o layout)."""

    def __init__(self, model: Recurrent) -> None:
        super().__init__()
        lstm = model.lstm
        self.cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
        self.cell.weight_ih.data.copy_(lstm.weight_ih_l0.data)
        self.cell.weight_hh.data.copy_(lstm.weight_hh_l0.data)
        self.cell.bias_ih.data.copy_(lstm.bias_ih_l0.data)
        self.cell.bias_hh.data.copy_(lstm.bias_hh_l0.data)
        self.head = model.head

    def forward(self, x: Any, h: Any, c: Any) -> tuple[Any, Any, Any]:
        h_out, c_out = self.cell(x, (h, c))
        return torch.sigmoid(self.head(h_out).squeeze(-1)), h_out, c_out


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def _arrays(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float64) for k, v in tensors.items()}


def train_mlp(job: dict[str, Any]) -> tuple[bytes, np.ndarray, dict[str, np.ndarray]]:
    """Mini-batch Adam on binary cross-entropy; the graph, its outputs on the probe and its
    weights (``w1, b1, w2, b2, w3, b3``, for the worker's integrated gradients in numpy)."""
    X = torch.from_numpy(job["X"].astype(np.float32))
    y = torch.from_numpy(job["y"].astype(np.float32))
    model = MLP(X.shape[1], int(job["hidden"]))
    optimiser = torch.optim.Adam(model.parameters(), lr=float(job["lr"]))
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(int(job["seed"]))
    batch = max(1, int(job["batch"]))
    model.train()
    for _ in range(int(job["epochs"])):
        order = torch.randperm(X.shape[0], generator=generator)
        for start in range(0, X.shape[0], batch):
            idx = order[start : start + batch]
            optimiser.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            optimiser.step()
    model.eval()
    scored = nn.Sequential(model, nn.Sigmoid())
    probe = torch.from_numpy(job["probe"].astype(np.float32))
    with torch.no_grad():
        expected = scored(probe).numpy()
    buffer = io.BytesIO()
    torch.onnx.export(
        scored, (probe[:1],), buffer, input_names=["x"], output_names=["prob"],
        dynamic_axes={"x": {0: "n"}, "prob": {0: "n"}}, opset_version=OPSET,
    )  # fmt: skip
    net = model.net
    weights = _arrays({
        "w1": net[0].weight, "b1": net[0].bias, "w2": net[2].weight, "b2": net[2].bias,
        "w3": net[4].weight, "b3": net[4].bias,
    })  # fmt: skip
    return buffer.getvalue(), expected, weights


def _padded(job: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Sequences side by side: (sequences × longest × f) inputs, labels, and a step mask."""
    X, y = job["X"].astype(np.float32), job["y"].astype(np.float32)
    lengths = job["lengths"].astype(int)
    longest = int(lengths.max())
    xs = np.zeros((len(lengths), longest, X.shape[1]), np.float32)
    ys = np.zeros((len(lengths), longest), np.float32)
    mask = np.zeros((len(lengths), longest), np.float32)
    start = 0
    for i, n in enumerate(lengths):
        xs[i, :n], ys[i, :n], mask[i, :n] = X[start : start + n], y[start : start + n], 1.0
        start += n
    return torch.from_numpy(xs), torch.from_numpy(ys), torch.from_numpy(mask)


def train_lstm(job: dict[str, Any]) -> tuple[bytes, np.ndarray, dict[str, np.ndarray]]:
    """Truncated BPTT over every sequence in time order, the state carried between chunks
    (as the stream carries it), so training sees the states the live model will see.
    Weights: ``w_ih, w_hh, b_ih, b_hh`` (gates i, f, g, o) and ``w_head, b_head``."""
    xs, ys, mask = _padded(job)
    model = Recurrent(xs.shape[2], int(job["hidden"]))
    optimiser = torch.optim.Adam(model.parameters(), lr=float(job["lr"]))
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    chunk = max(1, int(job["chunk"]))
    model.train()
    for _ in range(int(job["epochs"])):
        state = None
        for start in range(0, xs.shape[1], chunk):
            part = slice(start, start + chunk)
            weight = mask[:, part]
            if float(weight.sum()) == 0.0:
                break
            optimiser.zero_grad()
            logits, state = model(xs[:, part], state)
            loss = (loss_fn(logits, ys[:, part]) * weight).sum() / weight.sum()
            loss.backward()
            optimiser.step()
            state = (state[0].detach(), state[1].detach())
    model.eval()
    probe = torch.from_numpy(job["probe"].astype(np.float32))
    with torch.no_grad():
        logits, _ = model(probe.unsqueeze(0))
        expected = torch.sigmoid(logits[0]).numpy()
    cell = Cell(model).eval()
    hidden = int(job["hidden"])
    zeros = torch.zeros(1, hidden)
    buffer = io.BytesIO()
    torch.onnx.export(
        cell, (probe[:1], zeros, zeros), buffer, input_names=["x", "h", "c"],
        output_names=["prob", "h_out", "c_out"],
        dynamic_axes={k: {0: "n"} for k in ("x", "h", "c", "prob", "h_out", "c_out")},
        opset_version=OPSET,
    )  # fmt: skip
    lstm = model.lstm
    weights = _arrays({
        "w_ih": lstm.weight_ih_l0, "w_hh": lstm.weight_hh_l0, "b_ih": lstm.bias_ih_l0,
        "b_hh": lstm.bias_hh_l0, "w_head": model.head.weight, "b_head": model.head.bias,
    })  # fmt: skip
    return buffer.getvalue(), expected, weights


def main(argv: list[str]) -> int:
    """``torch_job.py JOB RESULT``."""
    if len(argv) != 3:
        print("usage: torch_job.py JOB.npz RESULT.npz", file=sys.stderr)
        return 2
    with np.load(argv[1], allow_pickle=False) as data:
        job = {key: data[key] for key in data.files}
    kind = str(job["kind"])
    _seed(int(job["seed"]))
    if kind == "mlp":
        graph, expected, weights = train_mlp(job)
    elif kind == "lstm":
        graph, expected, weights = train_lstm(job)
    else:
        print(f"unknown kind {kind!r}", file=sys.stderr)
        return 2
    arrays: dict[str, Any] = {
        "onnx": np.frombuffer(graph, dtype=np.uint8),
        "expected": np.asarray(expected, np.float64),
        "torch_version": np.array(torch.__version__),
        **{f"weight_{k}": v for k, v in weights.items()},
    }
    np.savez(argv[2], **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
