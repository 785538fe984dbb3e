"""LightGBM forests compiled to machine code with ``lleaves``, cached on disk by model hash.

Why: ``lightgbm.Booster.predict`` walks its trees through generic node arrays and costs
about 7 µs per row for a 300-tree, 41-feature direction model — roughly 145,000 rows/s per
core whatever the parameters (``num_threads`` 1 or 2, float32 input, C or Fortran order,
``predict_disable_shape_check``: all within noise per CPU-second; ``num_threads=2`` only
buys wall-clock on batches of about 10,000 rows by taking the second core, which the
2-core worker needs for Kafka, features and Redis). ``lleaves`` turns every tree into
branch code through LLVM; the same model then scores about 900,000 rows/s on ONE core.

Equality with LightGBM is checked, not assumed: thresholds, NaN/zero routing and the
sigmoid are the same; only the *order* of the float additions differs (``lleaves`` sums
blocks of 34 trees, then the blocks), so a probability can differ from
``Booster.predict`` by a few ulps (≤ 3e-16 measured on 1e5 rows). One input difference is
closed here: LightGBM reads any |x| ≤ :data:`ZERO_THRESHOLD` as 0.0 before its trees see
it, ``lleaves`` does not (a −1e-35 went the other way at a split on −1e-35 and moved a
probability by 0.04), so :func:`predict` zeroes those values first. :func:`max_deviation`
compares the compiled forest with ``Booster.predict`` at load time on probe rows built from
the model's own split thresholds (exactly at, just above, zero and NaN), and a forest that
deviates by more than :data:`TOLERANCE` is not used.

Compiling takes seconds (about 2 s for 300 trees), so the object code is cached under
``<data_dir>/compiled-models/`` keyed by a SHA-256 of the model text, the ``lleaves`` and
``llvmlite`` versions and the host CPU (the code is built for this CPU's instruction set):
a restart loads it in milliseconds, and a data dir moved to another CPU recompiles instead
of running foreign instructions. Nothing is downloaded: LLVM ships inside the ``llvmlite``
wheel.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tickcast.errors import ModelError

#: Largest |compiled − Booster.predict| accepted on the probe rows. Reordering the sum of
#: n leaf values moves it by at most about n·ε·Σ|leaf| (ε = 2.2e-16): for 300 trees with
#: leaves below 0.1, ~1e-12 on the raw score, and the sigmoid's slope is at most 1/4.
TOLERANCE = 1e-12
#: Subdirectory of ``Settings.data_dir`` holding compiled forests.
CACHE_SUBDIR = "compiled-models"
_PROBE_ROWS = 512
#: lleaves' default: trees evaluated in blocks of 34 for the instruction cache. A block as
#: large as the forest would sum in LightGBM's exact order (bit-identical results) but
#: scored ~40 % slower and compiled 6x longer (12 s for 300 trees).
_BLOCKSIZE = 34
#: LightGBM's ``kZeroThreshold`` (the float 1e-35f): inputs this close to 0 count as 0.
ZERO_THRESHOLD = float(np.float32(1e-35))


def cache_dir(data_dir: Path) -> Path:
    """Where compiled forests of this data dir live."""
    return Path(data_dir) / CACHE_SUBDIR


def cache_key(model_text: str) -> str:
    """Hex key of a compiled forest: model text, compiler versions and host CPU.

    ``lleaves`` loads a cached object without any consistency check, so everything the
    machine code depends on must be in the key.
    """
    import llvmlite
    import llvmlite.binding as llvm

    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot always detect features; the CPU name still counts
        features = ""
    digest = hashlib.sha256()
    for part in (
        model_text,
        metadata.version("lleaves"),
        llvmlite.__version__,
        llvm.get_host_cpu_name(),
        features,
        f"fp64:blocksize{_BLOCKSIZE}",
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:40]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a unique temp file + rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compile_lightgbm(booster: Any, directory: Path) -> Any:
    """A compiled ``lleaves.Model`` of ``booster``, loaded from ``directory`` when cached.

    Raises whatever ``lleaves``/LLVM raise (including ``ImportError``); the caller falls back.
    """
    import lleaves

    if booster.num_model_per_iteration() != 1:
        raise ModelError("only single-output (binary) LightGBM models are compiled")
    text = booster.model_to_string()  # num_iteration=None: what Booster.predict scores
    key = cache_key(text)
    directory.mkdir(parents=True, exist_ok=True)
    model_file = directory / f"lightgbm-{key}.txt"
    obj_file = directory / f"lightgbm-{key}.o"
    if not model_file.exists():
        _write_atomically(model_file, text.encode())
    compiled = lleaves.Model(model_file=str(model_file))
    if obj_file.exists():
        compiled.compile(cache=str(obj_file), fblocksize=_BLOCKSIZE)
    else:
        # lleaves writes the object with a plain write_bytes: compile into a private name
        # and rename, so a concurrent or crashed loader never reads a truncated object.
        tmp = directory / f".lightgbm-{key}.{os.getpid()}.{uuid.uuid4().hex}.o"
        compiled.compile(cache=str(tmp), fblocksize=_BLOCKSIZE)
        os.replace(tmp, obj_file)
    return compiled


def predict(compiled: Any, matrix: np.ndarray) -> np.ndarray:
    """P(up) of each row with the compiled forest, on the calling thread.

    ``n_jobs=1``: ``lleaves`` would start a thread pool per call for more, which cost more
    than it gave on 2,000-row batches (≈630k vs ≈870k rows/s measured on 2 shared cores).
    """
    data = np.ascontiguousarray(matrix, dtype=np.float64)  # no copy for the scorer's matrix
    tiny = np.abs(data) <= ZERO_THRESHOLD  # as LightGBM; exact zeros included, NaN not
    if tiny.any():
        data = np.where(tiny, 0.0, data)  # a copy: the caller's matrix stays as it was
    return np.asarray(compiled.predict(data, n_jobs=1), dtype=np.float64)


def split_thresholds(model_text: str, n_features: int) -> list[list[float]]:
    """Every numerical split threshold of a LightGBM model text, per feature index."""
    out: list[list[float]] = [[] for _ in range(n_features)]
    features: list[int] = []
    for line in model_text.splitlines():
        if line.startswith("split_feature="):
            features = [int(v) for v in line.split("=", 1)[1].split()]
        elif line.startswith("threshold=") and features:
            for feature, value in zip(features, line.split("=", 1)[1].split(), strict=False):
                if 0 <= feature < n_features:
                    out[feature].append(float(value))
            features = []
    return out


def probe_rows(model_text: str, n_features: int, rows: int = _PROBE_ROWS) -> np.ndarray:
    """Rows that reach both sides of the model's splits, boundaries, zeros and NaNs.

    Each value is drawn (seeded) from its feature's thresholds, the next double above
    each, 0.0, ±:data:`ZERO_THRESHOLD`, a subnormal and NaN — the places where a compiled
    comparison could disagree.
    """
    rng = np.random.default_rng(0)
    out = np.empty((rows, n_features))
    special = [0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, -5e-324, np.nan]
    for feature, thresholds in enumerate(split_thresholds(model_text, n_features)):
        t = np.asarray(thresholds, dtype=np.float64)
        candidates = np.concatenate([t, np.nextafter(t, np.inf), special])
        out[:, feature] = rng.choice(candidates, size=rows)
    out[0] = np.nan  # a row still warming up everywhere
    out[1] = 0.0
    return out


def max_deviation(compiled: Any, booster: Any) -> float:
    """Largest |compiled − ``Booster.predict``| over :func:`probe_rows` (inf on any NaN)."""
    text = booster.model_to_string()
    probe = probe_rows(text, booster.num_feature())
    reference = np.asarray(booster.predict(probe), dtype=np.float64).ravel()
    diff = np.abs(predict(compiled, probe) - reference)
    return float(np.inf) if np.isnan(diff).any() else float(diff.max(initial=0.0))
