"""Walk-forward and purged k-fold splits on the sorted unique timestamps of a labelled frame.

Rows are described by two arrays: ``ts`` (the row's bar time t) and ``label_end_ts`` (the bar
time whose close completes the label, t+h). A training row *overlaps* a test period
``[test_start, test_end]`` when its label interval ``[ts, label_end_ts]`` (closed) intersects
it; such rows are **purged**. Rows whose ``ts`` falls in the ``embargo`` timestamps right after
a test period are **embargoed** (dropped from training): serial correlation would otherwise
carry test information into them. In a walk-forward split training never lies after the test
period, so the embargo only bites in :class:`PurgedKFold`; the walk-forward splitter offers
``gap`` instead, a number of timestamps left out between training and test.

>>> import numpy as np
>>> ts = np.arange(10)
>>> folds = list(WalkForwardSplitter(n_splits=2, test_size=3).split(ts, ts + 1))
>>> [(f.train_idx.tolist(), f.test_idx.tolist()) for f in folds]
[([0, 1, 2], [4, 5, 6]), ([0, 1, 2, 3, 4, 5], [7, 8, 9])]
>>> folds[0].info.n_purged
1
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from training.errors import SplitError


@dataclass(frozen=True)
class FoldInfo:
    """Where a fold lies on the timeline and what purging/embargo removed."""

    fold: int
    train_start_ts: int
    train_end_ts: int
    test_start_ts: int
    test_end_ts: int
    n_train: int
    n_test: int
    n_purged: int
    n_embargoed: int

    def to_dict(self) -> dict[str, int]:
        """Plain dict (JSON-ready)."""
        return {k: int(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Fold:
    """Positional row indices of one split, plus its :class:`FoldInfo`."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    info: FoldInfo


def _as_arrays(ts: np.ndarray, label_end_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(ts, dtype="int64").ravel()
    e = np.asarray(label_end_ts, dtype="int64").ravel()
    if t.size != e.size:
        raise SplitError("length_mismatch", "ts and label_end_ts differ in length")
    if (e < t).any():
        raise SplitError("bad_label_end", "label_end_ts precedes ts for some rows")
    return t, e


def purge_and_embargo(
    candidate: np.ndarray,
    ts: np.ndarray,
    label_end_ts: np.ndarray,
    test_start: int,
    test_end: int,
    embargo_end: int | None,
) -> tuple[np.ndarray, int, int]:
    """Drop from boolean mask ``candidate`` the rows that overlap or follow the test period.

    Returns ``(train_idx, n_purged, n_embargoed)``. ``embargo_end`` is the last embargoed
    timestamp (``None``: no embargo).
    """
    overlap = candidate & (ts <= test_end) & (label_end_ts >= test_start)
    embargoed = candidate & ~overlap & (ts > test_end)
    if embargo_end is None:
        embargoed &= False
    else:
        embargoed &= ts <= embargo_end
    keep = candidate & ~overlap & ~embargoed
    return np.flatnonzero(keep), int(overlap.sum()), int(embargoed.sum())


def _info(
    k: int, t: np.ndarray, train: np.ndarray, test: np.ndarray, purged: int, emb: int
) -> FoldInfo:
    train_ts = t[train] if train.size else np.array([-1])
    return FoldInfo(
        fold=k,
        train_start_ts=int(train_ts.min()),
        train_end_ts=int(train_ts.max()),
        test_start_ts=int(t[test].min()),
        test_end_ts=int(t[test].max()),
        n_train=int(train.size),
        n_test=int(test.size),
        n_purged=purged,
        n_embargoed=emb,
    )


@dataclass(frozen=True)
class WalkForwardSplitter:
    """Walk-forward folds: each test block follows its training window in time.

    The last ``n_splits * test_size`` unique timestamps form ``n_splits`` consecutive test
    blocks (``test_size`` defaults to ``T // (n_splits + 1)``). Training takes every earlier
    timestamp (``window="expanding"``) or the ``train_size`` latest ones (``"rolling"``),
    minus ``gap`` timestamps before the test block, then purges rows whose label reaches into
    the test block. ``min_train_size`` (timestamps, default ``test_size``) guards the first fold.
    """

    n_splits: int = 5
    test_size: int | None = None
    window: Literal["expanding", "rolling"] = "expanding"
    train_size: int | None = None
    min_train_size: int | None = None
    gap: int = 0
    embargo: int = 0
    purge: bool = True

    def split(self, ts: np.ndarray, label_end_ts: np.ndarray) -> Iterator[Fold]:
        """Yield one :class:`Fold` per test block, oldest first."""
        t, e = _as_arrays(ts, label_end_ts)
        if not self.purge:
            e = t.copy()
        uniq = np.unique(t)
        n_ts = uniq.size
        if self.n_splits < 1 or self.gap < 0 or self.embargo < 0:
            raise SplitError("bad_params", "n_splits >= 1, gap >= 0, embargo >= 0 required")
        test_size = self.test_size or n_ts // (self.n_splits + 1)
        if test_size < 1:
            raise SplitError("too_few_timestamps", f"{n_ts} timestamps for {self.n_splits} folds")
        if self.window == "rolling" and not self.train_size:
            raise SplitError("bad_params", "a rolling window needs train_size")
        min_train = self.min_train_size or test_size
        first_test = n_ts - self.n_splits * test_size
        if first_test - self.gap < min_train:
            raise SplitError(
                "too_few_timestamps",
                f"{n_ts} timestamps leave {first_test - self.gap} for the first training "
                f"window; {min_train} needed",
            )
        for k in range(self.n_splits):
            start = first_test + k * test_size
            stop = start + test_size
            train_hi = start - self.gap
            train_lo = 0
            if self.window == "rolling" and self.train_size:
                train_lo = max(0, train_hi - self.train_size)
            candidate = (t >= uniq[train_lo]) & (t < uniq[train_hi])
            test_idx = np.flatnonzero((t >= uniq[start]) & (t <= uniq[stop - 1]))
            emb_end = uniq[min(stop - 1 + self.embargo, n_ts - 1)] if self.embargo else None
            train_idx, purged, emb = purge_and_embargo(
                candidate, t, e, int(uniq[start]), int(uniq[stop - 1]), emb_end
            )
            yield Fold(train_idx, test_idx, _info(k, t, train_idx, test_idx, purged, emb))


@dataclass(frozen=True)
class PurgedKFold:
    """K contiguous test blocks; training is every other row, purged and embargoed.

    Unlike walk-forward, training also uses rows *after* the test block, so the ``embargo``
    (timestamps after the test block) matters here.
    """

    n_splits: int = 5
    embargo: int = 0

    def split(self, ts: np.ndarray, label_end_ts: np.ndarray) -> Iterator[Fold]:
        """Yield one :class:`Fold` per block, in time order."""
        t, e = _as_arrays(ts, label_end_ts)
        uniq = np.unique(t)
        if self.n_splits < 2 or uniq.size < self.n_splits:
            raise SplitError("too_few_timestamps", f"{uniq.size} timestamps, {self.n_splits} folds")
        for k, block in enumerate(np.array_split(np.arange(uniq.size), self.n_splits)):
            lo, hi = int(uniq[block[0]]), int(uniq[block[-1]])
            test_mask = (t >= lo) & (t <= hi)
            emb_end = uniq[min(block[-1] + self.embargo, uniq.size - 1)] if self.embargo else None
            train_idx, purged, emb = purge_and_embargo(~test_mask, t, e, lo, hi, emb_end)
            test_idx = np.flatnonzero(test_mask)
            yield Fold(train_idx, test_idx, _info(k, t, train_idx, test_idx, purged, emb))
