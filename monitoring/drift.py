"""Feature drift against a reference distribution: PSI and binned KS per event-time window.

A reference is *binned*: ``edges`` and ``proportions`` per feature (deciles of the training
data; ``training/reference.py`` stores this structure in MLflow). ``edges`` are either the
``k + 1`` ascending bin boundaries (first and last are the sample's min and max) or the
``k - 1`` interior cut points; either way the outer bins are open, so values beyond the ends
fall into the first or last bin, and bin ``i`` is ``[cut_{i-1}, cut_i)``.

State per (window, feature) is the ``k`` bin counts — bounded, whatever the window's size.

* **PSI** ``= Σ (a_i − e_i) · ln(a_i / e_i)`` over the bins, both proportions floored at
  ``EPS = 1e-4`` so an empty bin does not make it infinite.
* **KS** is the *binned* two-sample statistic ``max_j |E(c_j) − A(c_j)|`` over the cut points
  (the reference is only known there). For the empirical CDFs of the underlying samples it
  satisfies ``D_binned ≤ D_exact ≤ D_binned + max_i max(e_i, a_i)`` (both CDFs move by at
  most one bin's mass between cuts); no p-value is given (``ks_pvalue`` null).

>>> ref = ReferenceDistribution.from_sample(list(range(100)), bins=4)
>>> ref.cuts.tolist(), ref.expected.tolist()
([24.75, 49.5, 74.25], [0.25, 0.25, 0.25, 0.25])
>>> round(psi(ref.expected, ref.expected), 12)
0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

EPS = 1e-4
Level = Literal["OK", "WARN", "ALERT"]


@runtime_checkable
class BinnedReference(Protocol):
    """What a stored reference must offer (e.g. training/reference.py's dataclass)."""

    edges: Sequence[float]
    proportions: Sequence[float]


@dataclass(frozen=True, slots=True)
class ReferenceDistribution:
    """One feature's reference: interior cut points and bin proportions (summing to 1)."""

    cuts: NDArray[np.float64]
    expected: NDArray[np.float64]
    n: int | None = None

    @classmethod
    def from_parts(
        cls, edges: Sequence[float], proportions: Sequence[float], n: int | None = None
    ) -> ReferenceDistribution:
        """Build from ``k + 1`` boundaries or ``k - 1`` cuts and ``k`` proportions."""
        p = np.asarray(proportions, dtype=np.float64)
        e = np.asarray(edges, dtype=np.float64)
        k = p.size
        if k < 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("proportions: at least 2 finite, non-negative values, sum > 0")
        if e.size == k + 1:
            e = e[1:-1]
        elif e.size != k - 1:
            raise ValueError(f"{e.size} edges for {k} proportions (want {k + 1} or {k - 1})")
        if not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
            raise ValueError("edges must be finite and ascending")
        return cls(e, p / p.sum(), n)

    @classmethod
    def coerce(cls, value: BinnedReference | ReferenceDistribution) -> ReferenceDistribution:
        """Accept any object with ``edges`` and ``proportions`` (see :class:`BinnedReference`)."""
        if isinstance(value, ReferenceDistribution):
            return value
        return cls.from_parts(list(value.edges), list(value.proportions), getattr(value, "n", None))

    @classmethod
    def from_sample(cls, values: ArrayLike, bins: int = 10) -> ReferenceDistribution:
        """Quantile (default decile) bins of a sample, proportions as actually counted."""
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size < bins:
            raise ValueError(f"need at least {bins} finite values, got {x.size}")
        cuts = np.quantile(x, np.arange(1, bins) / bins)
        counts = np.bincount(np.searchsorted(cuts, x, side="right"), minlength=bins)
        return cls(cuts, counts / counts.sum(), int(x.size))

    @property
    def bins(self) -> int:
        """Number of bins ``k``."""
        return int(self.expected.size)

    @property
    def edges(self) -> list[float]:
        """The ``k - 1`` interior cut points (the stored form of :meth:`to_dict`)."""
        return [float(c) for c in self.cuts]

    @property
    def proportions(self) -> list[float]:
        """The ``k`` bin proportions."""
        return [float(p) for p in self.expected]

    def bin_counts(self, values: ArrayLike) -> NDArray[np.int64]:
        """Counts of finite ``values`` per bin (NaN, the warm-up marker, is ignored)."""
        x = np.asarray(values, dtype=np.float64)
        x = x[~np.isnan(x)]
        return np.bincount(np.searchsorted(self.cuts, x, side="right"), minlength=self.bins)

    def to_dict(self) -> dict[str, object]:
        """JSON-able ``{"edges", "proportions", "n"}``."""
        return {"edges": self.edges, "proportions": self.proportions, "n": self.n}


def psi(expected: ArrayLike, actual: ArrayLike, eps: float = EPS) -> float:
    """Population stability index of two proportion vectors (floored at ``eps``)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def binned_ks(expected: ArrayLike, actual: ArrayLike) -> float:
    """Largest CDF gap at the bin boundaries (see the module docstring for its bounds)."""
    e = np.cumsum(np.asarray(expected, dtype=np.float64))
    a = np.cumsum(np.asarray(actual, dtype=np.float64))
    return float(np.max(np.abs(e - a)))


def drift_level(value: float, warn: float = 0.1, alert: float = 0.25) -> Level:
    """``OK`` below ``warn``, ``WARN`` below ``alert``, else ``ALERT``.

    >>> drift_level(0.05), drift_level(0.1), drift_level(0.3)
    ('OK', 'WARN', 'ALERT')
    """
    if value >= alert:
        return "ALERT"
    return "WARN" if value >= warn else "OK"


@dataclass(frozen=True, slots=True)
class DriftResult:
    """PSI and KS of one feature over one closed (or, on flush, partial) window."""

    feature: str
    window_start: int
    window_end: int
    psi: float
    ks: float
    n: int
    level: Level


@dataclass(slots=True)
class _Window:
    counts: NDArray[np.int64]
    first_offsets: dict[int, int] = field(default_factory=dict)


class DriftMonitor:
    """Incremental PSI/KS of every feature per tumbling event-time window.

    ``update`` takes a micro-batch (event times in ms and an ``(n, F)`` value matrix in
    ``names`` order) and returns the results of the windows the watermark (the largest event
    time seen) closed; records older than the closed horizon are counted in ``late`` and
    dropped. Only bin counts are kept: ``F × k`` integers per open window.
    """

    def __init__(
        self,
        names: Sequence[str],
        references: Mapping[str, BinnedReference | ReferenceDistribution],
        *,
        window_ms: int = 86_400_000,
        warn: float = 0.1,
        alert: float = 0.25,
        allowed_lateness_ms: int = 0,
    ) -> None:
        self.names = tuple(names)
        self.columns = [i for i, name in enumerate(self.names) if name in references]
        self.refs = [ReferenceDistribution.coerce(references[self.names[i]]) for i in self.columns]
        self.kmax = max((r.bins for r in self.refs), default=1)
        self.window_ms = window_ms
        self.warn, self.alert = warn, alert
        self.allowed_lateness_ms = allowed_lateness_ms
        self.windows: dict[int, _Window] = {}
        self.watermark: int | None = None
        self.closed_until: int | None = None
        self.late = 0

    def _new_window(self) -> _Window:
        return _Window(np.zeros((len(self.refs), self.kmax), dtype=np.int64))

    def update(
        self,
        ts_ms: ArrayLike,
        values: ArrayLike,
        partitions: ArrayLike | None = None,
        offsets: ArrayLike | None = None,
        watermark: int | None = None,
    ) -> list[DriftResult]:
        """Add a batch; return results of windows it closed (oldest first).

        ``watermark`` overrides the batch's largest event time: a consumer of several
        partitions passes the smallest of the partitions' largest event times, so a lagging
        partition's records are not declared late.
        """
        ts = np.asarray(ts_ms, dtype=np.int64)
        if ts.size == 0:
            return []
        matrix = np.asarray(values, dtype=np.float64).reshape(ts.size, len(self.names))
        starts = ts - ts % self.window_ms
        if self.closed_until is not None:
            fresh = starts >= self.closed_until
            self.late += int(ts.size - fresh.sum())
        else:
            fresh = np.ones(ts.size, dtype=bool)
        parts = None if partitions is None else np.asarray(partitions, dtype=np.int64)
        offs = None if offsets is None else np.asarray(offsets, dtype=np.int64)
        for start in np.unique(starts[fresh]).tolist():
            rows = fresh & (starts == start)
            window = self.windows.get(start)
            if window is None:
                window = self.windows[start] = self._new_window()
            window.counts += self._bin(matrix[rows])
            if parts is not None and offs is not None:
                for p, o in zip(parts[rows].tolist(), offs[rows].tolist(), strict=True):
                    first = window.first_offsets.get(p)
                    if first is None or o < first:
                        window.first_offsets[p] = o
        newest = int(ts.max()) if watermark is None else watermark
        self.watermark = newest if self.watermark is None else max(self.watermark, newest)
        return self._close(self.watermark - self.allowed_lateness_ms)

    def _bin(self, block: NDArray[np.float64]) -> NDArray[np.int64]:
        n_features = len(self.refs)
        flat = np.empty((block.shape[0], n_features), dtype=np.int64)
        for j, (col, ref) in enumerate(zip(self.columns, self.refs, strict=True)):
            flat[:, j] = np.searchsorted(ref.cuts, block[:, col], side="right") + j * self.kmax
        valid = ~np.isnan(block[:, self.columns])
        counts = np.bincount(flat[valid], minlength=n_features * self.kmax)
        return counts.reshape(n_features, self.kmax)

    def _close(self, horizon: int) -> list[DriftResult]:
        results: list[DriftResult] = []
        for start in sorted(self.windows):
            end = start + self.window_ms
            if end > horizon:
                break
            results.extend(self.results(start, self.windows.pop(start).counts))
            self.closed_until = end if self.closed_until is None else max(self.closed_until, end)
        return results

    def results(self, start: int, counts: NDArray[np.int64]) -> list[DriftResult]:
        """PSI/KS of every feature with observations in one window's counts."""
        out: list[DriftResult] = []
        for j, ref in enumerate(self.refs):
            c = counts[j, : ref.bins]
            n = int(c.sum())
            if n == 0:
                continue
            actual = c / n
            value = psi(ref.expected, actual)
            out.append(
                DriftResult(
                    self.names[self.columns[j]],
                    start,
                    start + self.window_ms,
                    value,
                    binned_ks(ref.expected, actual),
                    n,
                    drift_level(value, self.warn, self.alert),
                )
            )
        return out

    def flush(self) -> list[DriftResult]:
        """Results of the open windows so far (partial; a later complete one supersedes)."""
        return [r for s in sorted(self.windows) for r in self.results(s, self.windows[s].counts)]

    def first_open_offsets(self) -> dict[int, int]:
        """Per partition, the first offset feeding a still-open window (commit bound)."""
        bound: dict[int, int] = {}
        for window in self.windows.values():
            for p, o in window.first_offsets.items():
                bound[p] = min(o, bound.get(p, o))
        return bound
