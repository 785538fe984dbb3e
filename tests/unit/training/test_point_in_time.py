"""The guard refuses features that peek ahead; honest features pass."""

from __future__ import annotations

import pytest

from tests.unit.training.synthetic import StandInFeatureSet, make_bars, standin_compute
from training.errors import LookAheadError
from training.point_in_time import check_point_in_time
from training.walk_forward import WalkForwardConfig, run_walk_forward

BARS = make_bars(200, symbols=("A", "B", "C"), signal=0.3)


def recompute(fs: StandInFeatureSet):  # type: ignore[no-untyped-def]
    return lambda b: standin_compute(b, fs)


def test_honest_features_pass() -> None:
    fs = StandInFeatureSet()
    report = check_point_in_time(standin_compute(BARS, fs), BARS, recompute(fs))
    assert report.features == list(fs.names)
    assert len(report.cutoffs) == 4
    assert abs(report.next_return_corr["log_volume"]) < 0.95


@pytest.mark.parametrize("peek", ["peek_next_return", "peek_centered_mean"])
def test_peeking_feature_is_refused_by_truncation(peek: str) -> None:
    fs = StandInFeatureSet(names=("ret_1", peek, "log_volume"))
    with pytest.raises(LookAheadError) as exc:
        check_point_in_time(standin_compute(BARS, fs), BARS, recompute(fs))
    assert exc.value.reason == "truncation_mismatch"
    assert exc.value.features == [peek]
    assert exc.value.cutoff_ts is not None


def test_correlation_check_alone_catches_the_blatant_peek_only() -> None:
    blatant = StandInFeatureSet(names=("ret_1", "peek_next_return"))
    with pytest.raises(LookAheadError) as exc:
        check_point_in_time(standin_compute(BARS, blatant), BARS)
    assert exc.value.reason == "implausible_correlation"
    assert exc.value.features == ["peek_next_return"]
    # a centred moving average peeks too, but only the truncation test can tell
    subtle = StandInFeatureSet(names=("ret_1", "peek_centered_mean"))
    check_point_in_time(standin_compute(BARS, subtle), BARS)


def test_run_walk_forward_refuses_a_peeking_feature_set() -> None:
    fs = StandInFeatureSet(names=("ret_1", "peek_centered_mean"))
    with pytest.raises(LookAheadError):
        run_walk_forward(
            BARS, fs, WalkForwardConfig(models=("zero_return",)), compute=standin_compute
        )
