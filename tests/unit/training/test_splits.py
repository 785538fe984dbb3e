"""Walk-forward and purged k-fold splits never let a training label see the test period."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.training.synthetic import make_bars
from training.errors import SplitError
from training.labels import make_labels
from training.splits import PurgedKFold, WalkForwardSplitter


def labelled(h: int, seed: int = 0):  # type: ignore[no-untyped-def]
    bars = make_bars(120, symbols=("A", "B", "C"), seed=seed)
    bars = bars.drop(index=np.random.default_rng(seed).choice(len(bars), 30, replace=False))
    return make_labels(bars, h)


def assert_no_overlap(ts, end, fold) -> None:  # type: ignore[no-untyped-def]
    lo, hi = ts[fold.test_idx].min(), ts[fold.test_idx].max()
    tr_ts, tr_end = ts[fold.train_idx], end[fold.train_idx]
    # no training label interval [t, t+h] intersects the test period [lo, hi]
    assert not ((tr_ts <= hi) & (tr_end >= lo)).any()
    assert not np.intersect1d(fold.train_idx, fold.test_idx).size


@pytest.mark.parametrize("h", [1, 2, 5, 10])
@pytest.mark.parametrize("window", ["expanding", "rolling"])
@pytest.mark.parametrize("gap", [0, 3])
def test_walk_forward_purges_exactly(h: int, window: str, gap: int) -> None:
    lab = labelled(h, seed=h)
    ts, end = lab["ts_ms"].to_numpy(), lab["label_end_ts"].to_numpy()
    uniq = np.unique(ts)
    splitter = WalkForwardSplitter(
        n_splits=4,
        test_size=15,
        window=window,
        train_size=40,
        gap=gap,  # type: ignore[arg-type]
    )
    folds = list(splitter.split(ts, end))
    assert len(folds) == 4
    previous_hi = -1
    for k, fold in enumerate(folds):
        assert_no_overlap(ts, end, fold)
        test_ts = np.unique(ts[fold.test_idx])
        assert test_ts.size == 15
        assert test_ts.min() > previous_hi  # consecutive, non-overlapping blocks
        previous_hi = test_ts.max()
        start = np.searchsorted(uniq, test_ts.min())
        # independent expectation: rows before the gap, inside the window, label ends before test
        lo_pos = 0 if window == "expanding" else max(0, start - gap - 40)
        expected = np.flatnonzero(
            (ts >= uniq[lo_pos]) & (ts < uniq[start - gap]) & (end < test_ts.min())
        )
        np.testing.assert_array_equal(fold.train_idx, expected)
        assert fold.info.n_purged == int(
            ((ts >= uniq[lo_pos]) & (ts < uniq[start - gap]) & (end >= test_ts.min())).sum()
        )
        assert fold.info.fold == k
        assert fold.info.n_train == fold.train_idx.size
        assert ts[fold.train_idx].max() < test_ts.min()
    assert folds[-1].test_idx.max() == len(lab) - 1  # the last block ends at the last row


@pytest.mark.parametrize("h", [1, 4])
def test_purging_is_what_prevents_the_leak(h: int) -> None:
    lab = labelled(h)
    ts, end = lab["ts_ms"].to_numpy(), lab["label_end_ts"].to_numpy()
    leaky = next(WalkForwardSplitter(n_splits=3, purge=False).split(ts, end))
    lo = ts[leaky.test_idx].min()
    assert (end[leaky.train_idx] >= lo).any()  # without purging, labels reach into the test
    clean = next(WalkForwardSplitter(n_splits=3).split(ts, end))
    assert clean.info.n_purged >= h  # every symbol loses its last labels before the test


@pytest.mark.parametrize("h", [1, 3, 6])
@pytest.mark.parametrize("embargo", [0, 5])
def test_purged_kfold_purges_and_embargoes(h: int, embargo: int) -> None:
    lab = labelled(h, seed=1)
    ts, end = lab["ts_ms"].to_numpy(), lab["label_end_ts"].to_numpy()
    uniq = np.unique(ts)
    folds = list(PurgedKFold(n_splits=5, embargo=embargo).split(ts, end))
    assert np.array_equal(np.sort(np.concatenate([f.test_idx for f in folds])), np.arange(len(ts)))
    for fold in folds:
        assert_no_overlap(ts, end, fold)
        hi = ts[fold.test_idx].max()
        after = ts[fold.train_idx][ts[fold.train_idx] > hi]
        if after.size and embargo:
            hi_pos = np.searchsorted(uniq, hi)
            assert after.min() > uniq[min(hi_pos + embargo, uniq.size - 1)]
        if embargo and hi < uniq[-embargo - 1]:
            assert fold.info.n_embargoed > 0
        if not embargo:
            assert fold.info.n_embargoed == 0


def test_walk_forward_never_embargoes_and_reports_info() -> None:
    lab = labelled(2)
    folds = list(
        WalkForwardSplitter(n_splits=3, embargo=4).split(lab["ts_ms"], lab["label_end_ts"])
    )
    assert all(f.info.n_embargoed == 0 for f in folds)  # training never follows the test block
    info = folds[0].info.to_dict()
    assert set(info) >= {"train_start_ts", "test_end_ts", "n_purged"}


@pytest.mark.parametrize(
    "splitter",
    [
        WalkForwardSplitter(n_splits=50, test_size=10),
        WalkForwardSplitter(n_splits=3, window="rolling"),
        WalkForwardSplitter(n_splits=0),
        PurgedKFold(n_splits=1),
    ],
)
def test_impossible_splits_are_typed_errors(splitter) -> None:  # type: ignore[no-untyped-def]
    lab = labelled(1)
    with pytest.raises(SplitError):
        list(splitter.split(lab["ts_ms"], lab["label_end_ts"]))


def test_label_end_before_ts_is_refused() -> None:
    with pytest.raises(SplitError):
        list(WalkForwardSplitter(n_splits=2).split(np.arange(10), np.arange(10) - 1))
