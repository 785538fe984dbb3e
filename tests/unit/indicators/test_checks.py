"""One suite of generic checks run against every indicator (River's ``checks`` habit)."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable

import numpy as np
import pytest

from indicators.base import Indicator
from indicators.feature_set import REGISTRY
from indicators.momentum import LogReturn
from indicators.rolling import RollingMax, RollingMin, RollingMoments, RollingSum
from indicators.trend import SMA
from indicators.volume import SessionVWAP
from tests.unit.indicators.test_reference import CASES

FACTORIES: list[Callable[[], Indicator]] = [factory for factory, _ in CASES]
IDS = [repr(f()) for f in FACTORIES]


def _size(obj: object) -> int:
    return len(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_warmup_is_none_until_warmup_updates(factory, daily_bars) -> None:  # type: ignore[no-untyped-def]
    ind = factory()
    for i, bar in enumerate(daily_bars[: ind.warmup + 5], start=1):
        ind.update_bar(bar)
        assert ind.ready is (i >= ind.warmup)
        if i < ind.warmup:
            assert ind.values() == (None,) * ind.n_outputs
            assert ind.get() is None
            assert all(math.isnan(v) for v in ind.out)
        else:
            assert None not in ind.values(), (i, ind.values())
            assert ind.get() == ind.values()[0]


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_finite_after_warmup(factory, daily_bars) -> None:  # type: ignore[no-untyped-def]
    ind = factory()
    for i, bar in enumerate(daily_bars, start=1):
        ind.update_bar(bar)
        if i >= ind.warmup:
            assert all(math.isfinite(v) for v in ind.out), (i, ind.out)


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_pickle_round_trip_mid_series_continues_identically(factory, daily_bars) -> None:  # type: ignore[no-untyped-def]
    ind = factory()
    for bar in daily_bars[:997]:  # mid-ring for every window size used
        ind.update_bar(bar)
    twin = pickle.loads(pickle.dumps(ind))
    assert type(twin) is type(ind)
    assert twin.names == ind.names
    for bar in daily_bars[997:]:
        ind.update_bar(bar)
        twin.update_bar(bar)
        assert twin.out == ind.out or np.array_equal(twin.out, ind.out, equal_nan=True)


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_bounded_memory(factory, long_bars) -> None:  # type: ignore[no-untyped-def]
    ind = factory()
    sizes = {}
    for i, bar in enumerate(long_bars, start=1):
        ind.update_bar(bar)
        if i in (1000, 10_000):
            sizes[i] = _size(ind)
    assert sizes[1000] == sizes[10_000], sizes
    assert sizes[10_000] < 2_000


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_names_and_params(factory) -> None:  # type: ignore[no-untyped-def]
    ind = factory()
    assert REGISTRY[ind.kind] is type(ind)
    assert len(ind.names) == len(set(ind.names)) == ind.n_outputs == len(ind.out)
    copy = type(ind)(**ind.params())
    assert copy.names == ind.names
    assert copy.warmup == ind.warmup
    assert repr(ind).startswith(type(ind).__name__ + "(")
    for key, value in ind.params().items():  # names are built from every parameter
        other = type(ind)(**{**ind.params(), key: value + 1})
        assert set(other.names).isdisjoint(ind.names), (key, other.names)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_bad_parameters_raise_value_error(kind) -> None:  # type: ignore[no-untyped-def]
    cls = REGISTRY[kind]
    params = cls().params()
    for name in params:
        with pytest.raises(ValueError, match=name):
            cls(**{**params, name: -1})


def test_sma_does_not_drift_on_a_long_series() -> None:
    """A running sum on values ~1e6 loses digits; exact re-summation at each wrap bounds it."""
    rng = random.Random(3)
    sma = SMA(50)
    window: list[float] = []
    worst = 0.0
    for _ in range(200_000):
        x = 1e6 + rng.gauss(0.0, 1.0) * rng.choice((1e-3, 1.0, 1e3))
        sma.update(x)
        window = [*window[-49:], x]
        if sma.ready and rng.random() < 0.01:
            exact = math.fsum(window) / 50
            worst = max(worst, abs(sma.out[0] - exact) / exact)
    assert worst < 1e-13


def test_rolling_helpers_match_numpy_at_every_step() -> None:
    rng = np.random.default_rng(0)
    xs = 1e4 + np.cumsum(rng.normal(0.0, 0.01, 5000))  # large mean, tiny spread
    size = 17
    s, m, hi, lo = RollingSum(size), RollingMoments(size), RollingMax(size), RollingMin(size)
    for i, x in enumerate(xs.tolist()):
        s.push(x)
        m.push(x)
        w = xs[max(0, i - size + 1) : i + 1]
        assert hi.push(x) == w.max()
        assert lo.push(x) == w.min()
        assert s.count == m.count == len(w)
        assert s.sum == pytest.approx(w.sum(), rel=1e-13)
        assert m.mean() == pytest.approx(w.mean(), rel=1e-13)
        if len(w) > 1:
            assert m.var(1) == pytest.approx(w.var(ddof=1), rel=1e-6, abs=1e-12)


def test_log_return_uses_close_horizon_bars_back() -> None:
    r = LogReturn(3)
    for x in (100.0, 101.0, 102.0, 110.0, 99.0):
        r.update(x)
    assert r.get() == pytest.approx(math.log(99.0 / 101.0))


def test_session_vwap_state_is_constant_across_sessions() -> None:
    sv = SessionVWAP(session_ms=10)
    sizes = set()
    for t in range(1000, 2000):
        sv.update(t, 2.0, 1.0, 1.5, 10.0)
        sizes.add(_size(sv))
    assert len(sizes) == 1
    assert sv.get() == 1.5
