"""Reference distributions against numpy quantiles and an independent bin count."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from training.reference import (
    N_BINS,
    FeatureReference,
    ReferenceDistributions,
    bin_index,
    reference_from_frame,
    reference_from_matrix,
)


def _independent_proportions(values: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """Bins [-inf, q1), [q1, q2), ..., [q9, inf) counted with plain comparisons."""
    finite = values[np.isfinite(values)]
    bounds = np.concatenate(([-np.inf], interior, [np.inf]))
    counts = [np.sum((finite >= lo) & (finite < hi)) for lo, hi in itertools.pairwise(bounds)]
    return np.asarray(counts, dtype=float) / finite.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edges_and_proportions_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(size=5_000)
    values[rng.random(values.size) < 0.1] = np.nan
    values[:3] = np.inf
    ref = FeatureReference.from_values("x", values)
    finite = values[np.isfinite(values)]
    expected_inner = np.quantile(finite, np.linspace(0.1, 0.9, 9))
    np.testing.assert_allclose(ref.interior, expected_inner, rtol=1e-12)
    assert ref.edges[0] == finite.min()
    assert ref.edges[-1] == finite.max()
    assert len(ref.edges) == 11
    assert ref.count == finite.size
    assert ref.nan_fraction == pytest.approx(1 - finite.size / values.size)
    np.testing.assert_allclose(ref.proportions, _independent_proportions(values, expected_inner))
    assert sum(ref.proportions) == pytest.approx(1.0)
    # continuous data: every decile bin holds about 10 %
    np.testing.assert_allclose(ref.proportions, 0.1, atol=0.002)


def test_ties_never_double_count() -> None:
    values = np.array([0.0] * 70 + [1.0, 2.0, 3.0] * 10)
    ref = FeatureReference.from_values("ties", values)
    inner = np.quantile(values, np.linspace(0.1, 0.9, 9))
    np.testing.assert_allclose(ref.proportions, _independent_proportions(values, inner))
    assert sum(ref.proportions) == pytest.approx(1.0)
    # the 70 zeros all sit below the first non-zero edge: one bin, not several
    assert max(ref.proportions) == pytest.approx(0.7)
    constant = FeatureReference.from_values("c", np.full(50, 2.5))
    assert constant.proportions[-1] == 1.0
    assert constant.proportions_of(np.array([2.5, 2.5, 1.0]))[0] == pytest.approx(1 / 3)


def test_all_nan_feature_is_empty_and_live_binning_is_the_same_function() -> None:
    empty = FeatureReference.from_values("spread", np.full(10, np.nan))
    assert empty.empty
    assert empty.nan_fraction == 1.0
    assert empty.proportions_of(np.array([1.0])).tolist() == [0.0] * N_BINS
    ref = FeatureReference.from_values("x", np.arange(1000.0))
    live = np.array([-1e9, 1e9, np.nan, 500.0])
    assert bin_index(ref.interior, live).tolist() == [0, 9, -1, 5]
    np.testing.assert_allclose(
        ref.proportions_of(live), _independent_proportions(live, np.asarray(ref.interior))
    )


def test_json_round_trip_and_frame_helper() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": np.nan, "c": rng.integers(0, 3, 300)})
    refs = reference_from_frame(frame, ["a", "b", "c"], "v1")
    text = refs.to_json()
    json.loads(text)  # strict JSON: no NaN anywhere
    assert ReferenceDistributions.from_json(text) == refs
    assert refs.names == ["a", "b", "c"]
    assert refs["b"].empty
    assert refs.n_rows == 300
    assert len(refs) == 3
    with pytest.raises(KeyError):
        refs["missing"]
    with pytest.raises(ValueError, match="matrix"):
        reference_from_matrix(np.zeros((3, 2)), ["a", "b", "c"])


def test_monitoring_drift_accepts_the_reference_with_the_same_bins() -> None:
    from monitoring import drift

    values = np.random.default_rng(4).normal(size=2_000)
    ref = FeatureReference.from_values("x", values)
    theirs = drift.ReferenceDistribution.coerce(ref)
    np.testing.assert_allclose(theirs.cuts, ref.interior)
    np.testing.assert_allclose(theirs.expected, ref.proportions)
    live = np.random.default_rng(5).normal(0.3, 1.0, size=500)
    counts = theirs.bin_counts(live)
    np.testing.assert_allclose(counts / counts.sum(), ref.proportions_of(live))
