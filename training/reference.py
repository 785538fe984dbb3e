"""Reference distributions of the features over a model's training window (for drift / PSI).

For each feature the training rows give 11 edges — the minimum, the 9 interior deciles
(numpy's default linear quantiles) and the maximum — and the share of the training rows in
each of the 10 bins those edges define. Binning is the one function :func:`bin_index`, used
both here and by whoever compares live data later, so the two sides can never disagree:

* bin 0 is ``(-inf, q10)``, bin *k* is ``[q(10k), q(10k+10))``, bin 9 is ``[q90, +inf)``;
  live values outside ``[min, max]`` therefore fall into the outer bins;
* a value equal to an edge goes to the bin above it, so repeated edges (ties, e.g. a
  feature that is 0 on most rows) leave the bins between them empty instead of double
  counting;
* ``NaN`` (indicator warm-up, a missing quote) is not binned: its share is kept apart in
  ``nan_fraction`` and the proportions sum to 1 over the finite values.

A feature without a single finite training value has no edges and zero proportions
(``empty``); a drift check should skip it. A :class:`FeatureReference` has the ``edges`` /
``proportions`` / ``n`` shape that ``monitoring.drift.ReferenceDistribution.coerce`` takes.

>>> import numpy as np
>>> ref = FeatureReference.from_values("x", np.arange(100.0))
>>> [round(e, 1) for e in ref.edges[:3]], ref.proportions[0], ref.count
([0.0, 9.9, 19.8], 0.1, 100)
>>> bin_index(ref.interior, np.array([-5.0, 9.9, 50.0, 1e9, np.nan])).tolist()
[0, 1, 5, 9, -1]
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

N_BINS = 10
#: The 9 interior quantile levels: 0.1, 0.2, ..., 0.9.
QUANTILES: tuple[float, ...] = tuple(k / N_BINS for k in range(1, N_BINS))


def bin_index(interior: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each value (0..9) given the 9 interior edges; ``-1`` for NaN.

    ``searchsorted(..., side="right")``: a value equal to an edge lands in the bin above.
    """
    vals = np.asarray(values, dtype=np.float64)
    out = np.searchsorted(np.asarray(interior, dtype=np.float64), vals, side="right")
    out[np.isnan(vals)] = -1
    return out


def bin_proportions(interior: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the non-NaN ``values`` in each of the 10 bins (zeros when none is finite)."""
    idx = bin_index(interior, values)
    idx = idx[idx >= 0]
    counts = np.bincount(idx, minlength=N_BINS).astype(np.float64)
    return counts / idx.size if idx.size else counts


@dataclass(frozen=True)
class FeatureReference:
    """One feature's training distribution: 11 edges, 10 bin proportions, NaN share."""

    name: str
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    count: int
    nan_fraction: float

    @property
    def empty(self) -> bool:
        """True when the training window had no finite value of this feature."""
        return self.count == 0

    @property
    def n(self) -> int:
        """Finite training values (the name ``monitoring.drift`` looks for)."""
        return self.count

    @property
    def interior(self) -> tuple[float, ...]:
        """The 9 interior edges (deciles) that :func:`bin_index` takes."""
        return self.edges[1:-1]

    def proportions_of(self, values: np.ndarray) -> np.ndarray:
        """Live proportions of ``values`` in this reference's bins."""
        if self.empty:
            return np.zeros(N_BINS)
        return bin_proportions(self.interior, values)

    @classmethod
    def from_values(cls, name: str, values: np.ndarray) -> FeatureReference:
        """Reference of one column; ``±inf`` counts as missing, like in training sets."""
        vals = np.asarray(values, dtype=np.float64).ravel()
        finite = vals[np.isfinite(vals)]
        nan_fraction = 1.0 - finite.size / vals.size if vals.size else 0.0
        if finite.size == 0:
            return cls(name, (), (0.0,) * N_BINS, 0, float(nan_fraction))
        inner = np.quantile(finite, QUANTILES)
        edges = (float(finite.min()), *(float(q) for q in inner), float(finite.max()))
        props = bin_proportions(inner, finite)
        return cls(name, edges, tuple(float(p) for p in props), int(finite.size), nan_fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (every number finite)."""
        return {
            "name": self.name,
            "edges": list(self.edges),
            "proportions": list(self.proportions),
            "count": self.count,
            "nan_fraction": self.nan_fraction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReference:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            edges=tuple(float(e) for e in data["edges"]),
            proportions=tuple(float(p) for p in data["proportions"]),
            count=int(data["count"]),
            nan_fraction=float(data["nan_fraction"]),
        )


@dataclass(frozen=True)
class ReferenceDistributions:
    """The reference of every feature of a feature set, in feature order."""

    features: tuple[FeatureReference, ...]
    feature_set_version: str = ""
    n_rows: int = 0

    @property
    def names(self) -> list[str]:
        """Feature names in order."""
        return [f.name for f in self.features]

    def __getitem__(self, name: str) -> FeatureReference:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def __iter__(self) -> Iterator[FeatureReference]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "feature_set_version": self.feature_set_version,
            "n_rows": self.n_rows,
            "n_bins": N_BINS,
            "quantiles": list(QUANTILES),
            "features": [f.to_dict() for f in self.features],
        }

    def to_json(self) -> str:
        """Strict JSON (no NaN)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceDistributions:
        """Inverse of :meth:`to_dict`."""
        return cls(
            features=tuple(FeatureReference.from_dict(f) for f in data["features"]),
            feature_set_version=str(data.get("feature_set_version", "")),
            n_rows=int(data.get("n_rows", 0)),
        )

    @classmethod
    def from_json(cls, text: str) -> ReferenceDistributions:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def reference_from_matrix(
    X: np.ndarray, names: Sequence[str], feature_set_version: str = ""
) -> ReferenceDistributions:
    """References of the columns of a 2-D training matrix, named by ``names``."""
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"expected a (rows, {len(names)}) matrix, got shape {matrix.shape}")
    feats = tuple(FeatureReference.from_values(n, matrix[:, i]) for i, n in enumerate(names))
    return ReferenceDistributions(feats, feature_set_version, int(matrix.shape[0]))


def reference_from_frame(
    frame: pd.DataFrame, names: Sequence[str], feature_set_version: str = ""
) -> ReferenceDistributions:
    """References of the ``names`` columns of a training frame."""
    matrix = frame[list(names)].to_numpy(dtype=np.float64)
    return reference_from_matrix(matrix, names, feature_set_version)
