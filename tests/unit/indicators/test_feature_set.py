"""The feature set: names, version, per-symbol state."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from indicators.bar import Bar
from indicators.errors import FeatureSetError, InvalidBarError
from indicators.feature_set import DEFAULT_SPECS, REGISTRY, FeatureSet, IndicatorSpec, spec
from tests.unit.indicators.test_reference import run


def _pickled(obj: object) -> bytes:
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


def test_default_has_40_plus_unique_names_and_short_version() -> None:
    fs = FeatureSet.default()
    assert len(fs.names) >= 40
    assert len(fs) == len(fs.names)
    assert len(set(fs.names)) == len(fs.names)
    assert {"rsi_14", "bb_upper_20_2", "ret_5", "macd_hist_12_26_9", "atr_14"} <= set(fs.names)
    assert len(fs.version) == 12
    assert int(fs.version, 16) >= 0
    assert FeatureSet.default().version == fs.version  # deterministic, no salted hash()
    # Every indicator is used, but Alpha158, which is a named set of its own (feature_sets).
    assert {s.kind for s in DEFAULT_SPECS} == set(REGISTRY) - {"alpha158"}


@pytest.mark.parametrize("index", range(len(DEFAULT_SPECS)))
def test_version_changes_when_any_parameter_changes(index) -> None:  # type: ignore[no-untyped-def]
    base = FeatureSet.default()
    s = DEFAULT_SPECS[index]
    for key, value in s.params:
        changed = [*DEFAULT_SPECS]
        changed[index] = IndicatorSpec.of(s.kind, **{**dict(s.params), key: value + 1})
        fs = FeatureSet(changed)
        assert fs.version != base.version
        assert fs.names != base.names


def test_version_depends_on_order_but_not_on_spelling() -> None:
    base = FeatureSet.default()
    assert FeatureSet(reversed(DEFAULT_SPECS)).version != base.version
    respelled = [spec("bb", period=20, k=2) if s.kind == "bb" else s for s in DEFAULT_SPECS]
    assert FeatureSet(respelled).version == base.version
    again = FeatureSet.from_definition(base.definition())
    assert again.version == base.version
    assert again.names == base.names


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        ([spec("nope")], "unknown indicator"),
        ([spec("sma", period=0)], "period"),
        ([spec("sma", length=3)], "length"),
        ([spec("macd", fast=30, slow=26, signal=9)], "fast"),
        ([spec("sma", period=5), spec("sma", period=5)], "duplicate"),
        ([], "at least one"),
    ],
)
def test_bad_definitions_raise_feature_set_error(specs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FeatureSetError, match=match):
        FeatureSet(specs)


def test_from_definition_refuses_garbage() -> None:
    with pytest.raises(FeatureSetError):
        FeatureSet.from_definition([{"params": {}}])


def test_states_are_independent_copies(daily_bars) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    a, b = fs.new_state(), fs.new_state()
    for bar in daily_bars[:100]:
        a.update(bar)
    assert b.last_ts is None
    assert not b.ready
    assert _pickled(fs.new_state()) == _pickled(b)
    assert a.version == b.version == fs.version


def test_vector_is_the_indicators_values_in_name_order(daily_bars) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    state = fs.new_state()
    vectors = np.array([state.update(bar) for bar in daily_bars[:300]])
    assert vectors.shape == (300, len(fs.names))
    col = 0
    for s in fs.specs:
        ind = s.build()
        expected = run(ind, daily_bars[:300])
        width = expected.shape[1]
        np.testing.assert_array_equal(vectors[:, col : col + width], expected)
        col += width
    assert col == len(fs.names)


def test_warmup_then_nan_free(daily_bars) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    state = fs.new_state()
    for i, bar in enumerate(daily_bars, start=1):
        vec = state.update(bar)
        assert state.ready is (i >= fs.warmup)
        if i == 1:
            assert math.isnan(vec[fs.names.index("rsi_14")])
        if i >= fs.warmup:
            assert not any(math.isnan(v) for v in vec), [
                n for n, v in zip(fs.names, vec, strict=True) if math.isnan(v)
            ]


def test_quote_features_nan_without_quotes(daily_bars) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    state = fs.new_state()
    quote_cols = [fs.names.index(n) for n in ("spread", "mid", "rel_spread", "quote_imb")]
    for bar in daily_bars[:200]:
        vec = state.update(bar._replace(bid=None, ask=None, bid_size=None, ask_size=None))
    assert state.ready
    assert all(math.isnan(vec[j]) for j in quote_cols)
    assert sum(math.isnan(v) for v in vec) == len(quote_cols)


def test_state_pickles_small_and_bounded(long_bars) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    state = fs.new_state()
    sizes = {}
    for i, bar in enumerate(long_bars, start=1):
        state.update(bar)
        if i in (1000, 10_000):
            sizes[i] = len(_pickled(state))
    print(f"\nSymbolState pickled size, default set ({len(fs.names)} features): {sizes} bytes")
    assert sizes[1000] == sizes[10_000] < 12_000


def test_pickled_state_continues_identically(daily_bars) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureSet.default()
    state = fs.new_state()
    for bar in daily_bars[:777]:
        state.update(bar)
    twin = pickle.loads(_pickled(state))
    assert twin.last_ts == state.last_ts
    assert twin.ready
    for bar in daily_bars[777:]:
        assert twin.update(bar) == state.update(bar)


def test_stale_and_duplicate_bars_are_refused_without_change(daily_bars) -> None:  # type: ignore[no-untyped-def]
    state = FeatureSet.default().new_state()
    for bar in daily_bars[:50]:
        state.update(bar)
    before = _pickled(state)
    with pytest.raises(InvalidBarError) as dup:
        state.update(daily_bars[49])
    assert dup.value.reason == "duplicate"
    with pytest.raises(InvalidBarError) as old:
        state.update(daily_bars[10])
    assert old.value.reason == "out_of_order"
    assert _pickled(state) == before


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"close": math.nan}, "non_finite"),
        ({"volume": math.inf}, "non_finite"),
        ({"low": 0.0}, "non_positive_price"),
        ({"open": -1.0}, "non_positive_price"),
        ({"high": 1.0, "low": 2.0}, "high_below_low"),
        ({"volume": -5.0}, "negative_volume"),
        ({"close": "12.5"}, "not_a_number"),
        ({"volume": None}, "not_a_number"),
        ({"ts_ms": 1.7e12}, "bad_timestamp"),
    ],
)
def test_invalid_bars_are_refused_with_a_reason(fields, reason, daily_bars) -> None:  # type: ignore[no-untyped-def]
    state = FeatureSet.default().new_state()
    for bar in daily_bars[:30]:
        state.update(bar)
    before = _pickled(state)
    bad = daily_bars[30]._replace(**fields)
    with pytest.raises(InvalidBarError) as err:
        state.update(bad)
    assert err.value.reason == reason
    assert _pickled(state) == before
    state.update(daily_bars[30])  # the good bar still applies


def test_integer_inputs_are_accepted() -> None:
    state = FeatureSet([spec("sma", period=2), spec("obv")]).new_state()
    state.update(Bar(1, 10, 11, 9, 10, 100))
    assert state.update(Bar(2, 10, 13, 9, 12, 50)) == [11.0, 150.0]


def test_unusable_quotes_count_as_absent(daily_bars) -> None:  # type: ignore[no-untyped-def]
    state = FeatureSet([spec("quotes")]).new_state()
    for i, bad in enumerate(
        [
            {"bid": "x"},
            {"ask": -1.0, "bid_size": math.nan},
            {"bid": math.inf, "ask_size": "y"},
            {"bid": None},
        ]
    ):
        vec = state.update(daily_bars[i]._replace(**bad))
        assert all(math.isnan(v) for v in vec), (bad, vec)
    assert not any(math.isnan(v) for v in state.update(daily_bars[10]))


def test_same_millisecond_events_are_accepted_when_asked(daily_bars) -> None:  # type: ignore[no-untyped-def]
    strict, lenient = FeatureSet.default().new_state(), FeatureSet.default().new_state()
    for bar in daily_bars[:30]:
        strict.update(bar)
        lenient.update(bar, same_ts_ok=True)
    twin = daily_bars[29]._replace(close=daily_bars[29].close * 1.001)
    with pytest.raises(InvalidBarError):
        strict.update(twin)
    assert len(lenient.update(twin, same_ts_ok=True)) == len(FeatureSet.default().names)
    with pytest.raises(InvalidBarError) as old:
        lenient.update(daily_bars[10], same_ts_ok=True)
    assert old.value.reason == "out_of_order"
