"""PSI and binned KS against numpy / scipy; the windowed monitor on planted shifts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from monitoring.drift import (
    EPS,
    DriftMonitor,
    ReferenceDistribution,
    binned_ks,
    drift_level,
    psi,
)


def numpy_psi(reference: np.ndarray, sample: np.ndarray, bins: int = 10) -> float:
    """PSI computed directly: decile edges of the reference, np.histogram, the formula."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    e = np.histogram(reference, edges)[0] / reference.size
    a = np.histogram(sample, edges)[0] / sample.size
    e, a = np.maximum(e, EPS), np.maximum(a, EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.normal(0, 1, 3000),
        lambda r: r.normal(0.3, 1, 3000),
        lambda r: r.normal(0, 2, 3000),
        lambda r: r.standard_t(3, 3000),
        lambda r: r.exponential(1, 3000) - 1,
        lambda r: r.uniform(5, 6, 3000),  # entirely above the reference: empty bins
    ],
)
def test_psi_matches_numpy(make) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    reference = rng.normal(0, 1, 20_000)
    sample = make(rng)
    ref = ReferenceDistribution.from_sample(reference)
    got = psi(ref.expected, ref.bin_counts(sample) / sample.size)
    assert got == pytest.approx(numpy_psi(reference, sample), rel=1e-9, abs=1e-12)


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    p = np.full(10, 0.1)
    assert psi(p, p) == 0.0
    rng = np.random.default_rng(3)
    ref = ReferenceDistribution.from_sample(rng.normal(size=10_000))
    values = [psi(ref.expected, ref.bin_counts(rng.normal(m, 1, 5000)) / 5000) for m in (0, 0.5, 1)]
    assert values[0] < 0.01 < values[1] < values[2]


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.2, 1.0), (1.0, 1.0), (0.0, 1.7)])
def test_binned_ks_within_stated_bounds_of_scipy(shift: float, scale: float) -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, 5000)
    sample = rng.normal(shift, scale, 3000)
    ref = ReferenceDistribution.from_sample(reference)
    actual = ref.bin_counts(sample) / sample.size
    binned = binned_ks(ref.expected, actual)
    exact = stats.ks_2samp(reference, sample).statistic
    bound = float(np.max(np.maximum(ref.expected, actual)))
    assert binned <= exact + 1e-12
    assert exact <= binned + bound + 1e-12


def test_binned_ks_equals_exact_at_cut_points_with_many_bins() -> None:
    rng = np.random.default_rng(8)
    reference, sample = rng.normal(0, 1, 4000), rng.normal(0.5, 1, 4000)
    ref = ReferenceDistribution.from_sample(reference, bins=200)
    binned = binned_ks(ref.expected, ref.bin_counts(sample) / sample.size)
    assert binned == pytest.approx(stats.ks_2samp(reference, sample).statistic, abs=0.02)


def test_from_parts_accepts_boundaries_or_cuts_and_refuses_bad_input() -> None:
    a = ReferenceDistribution.from_parts([0, 1, 2, 3], [0.2, 0.3, 0.5])
    b = ReferenceDistribution.from_parts([1, 2], [2, 3, 5])
    assert a.cuts.tolist() == b.cuts.tolist() == [1.0, 2.0]
    assert b.expected.tolist() == pytest.approx([0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="edges"):
        ReferenceDistribution.from_parts([1, 2, 3, 4], [0.5, 0.5])
    with pytest.raises(ValueError, match="ascending"):
        ReferenceDistribution.from_parts([2, 1], [0.3, 0.3, 0.4])
    with pytest.raises(ValueError, match="proportions"):
        ReferenceDistribution.from_parts([1], [-1, 2])


def test_bin_counts_ignore_nan_and_route_outliers_to_outer_bins() -> None:
    ref = ReferenceDistribution.from_parts([0, 1, 2, 3], [0.2, 0.3, 0.5])
    counts = ref.bin_counts([np.nan, -100, 0.5, 1.0, 2.5, 1e9, np.inf])
    assert counts.tolist() == [2, 1, 3]


def test_levels() -> None:
    assert [drift_level(v, 0.1, 0.25) for v in (0.0, 0.099, 0.1, 0.2499, 0.25)] == [
        "OK", "OK", "WARN", "WARN", "ALERT",
    ]  # fmt: skip


def _monitor(rng: np.random.Generator, names: list[str], window_ms: int = 1000) -> DriftMonitor:
    refs = {n: ReferenceDistribution.from_sample(rng.normal(size=5000)) for n in names}
    return DriftMonitor(names, refs, window_ms=window_ms)


def test_monitor_flags_only_the_shifted_feature_and_matches_batch_psi() -> None:
    rng = np.random.default_rng(21)
    names = ["a", "b", "c", "d"]
    monitor = _monitor(rng, names)
    ts = np.arange(0, 3000)
    values = rng.normal(size=(3000, 4))
    values[1000:, 2] += 1.5  # shift feature c from the second window on
    values[::7, 0] = np.nan  # warm-up markers are ignored
    results = []
    for chunk in np.array_split(np.arange(3000), 17):  # micro-batches of uneven size
        results += monitor.update(ts[chunk], values[chunk])
    results += monitor.flush()
    by = {(r.feature, r.window_start): r for r in results}
    assert len(by) == 12
    for start in (1000, 2000):
        assert by[("c", start)].level == "ALERT"
        assert all(by[(n, start)].level == "OK" for n in "abd")
    assert by[("c", 0)].level == "OK"
    assert by[("a", 0)].n == 1000 - len(range(0, 1000, 7))
    # incremental counts equal a direct computation on the window's values
    ref_c = monitor.refs[2]
    direct = psi(ref_c.expected, ref_c.bin_counts(values[1000:2000, 2]) / 1000)
    assert by[("c", 1000)].psi == pytest.approx(direct, rel=1e-12)


def test_monitor_closes_on_watermark_and_drops_late_records() -> None:
    rng = np.random.default_rng(2)
    monitor = _monitor(rng, ["x"])
    assert monitor.update([10, 20], [[0.1], [0.2]]) == []
    closed = monitor.update([1500], [[0.3]])
    assert [(r.window_start, r.n) for r in closed] == [(0, 2)]
    assert monitor.closed_until == 1000
    assert monitor.update([999], [[0.0]]) == []
    assert monitor.late == 1
    assert set(monitor.windows) == {1000}  # bounded: one open window
    assert monitor.windows[1000].counts.shape == (1, 10)


def test_first_open_offsets_bound_commits() -> None:
    rng = np.random.default_rng(4)
    monitor = _monitor(rng, ["x"])
    monitor.update([1, 2, 1200], [[0], [0], [0]], partitions=[0, 1, 0], offsets=[5, 9, 6])
    assert monitor.first_open_offsets() == {0: 6}


def test_training_reference_json_is_accepted() -> None:
    """The registry's reference.json (training/reference.py) feeds the drift monitor."""
    from monitoring.drift_reference import parse_reference
    from training.reference import reference_from_matrix

    rng = np.random.default_rng(9)
    matrix = rng.normal(size=(2000, 3))
    matrix[:, 2] = np.nan  # never warmed up: skipped
    stored = reference_from_matrix(matrix, ["a", "b", "c"])
    refs = parse_reference(json.loads(stored.to_json()))
    assert set(refs) == {"a", "b"}
    direct = ReferenceDistribution.from_sample(matrix[:, 0])
    np.testing.assert_allclose(refs["a"].cuts, direct.cuts)
    np.testing.assert_allclose(refs["a"].expected, direct.expected, atol=1e-12)
