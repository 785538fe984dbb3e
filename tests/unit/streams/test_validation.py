"""Validation rules: each reason code, and the robust z-score against scipy."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pytest
from scipy import stats

from streams.validation import (
    SymbolGuard,
    ValidationRules,
    check_event_time,
    check_key,
    check_record,
    check_symbol,
    robust_center_scale,
    validate,
)
from tickcast.config import load_settings
from tickcast.errors import ConfigError

RULES = ValidationRules()


def bar(ts: int, close: float, **extra: Any) -> dict[str, Any]:
    record = {"symbol": "AAA", "ts": ts, "kind": "BAR", "open": close, "high": close * 1.01,
              "low": close * 0.99, "close": close, "volume": 10.0, "sequence": None}  # fmt: skip
    record.update(extra)
    return record


def test_robust_scale_matches_scipy() -> None:
    sample = deque(np.random.default_rng(3).standard_t(3, size=50).tolist())
    center, scale = robust_center_scale(sample)
    assert center == pytest.approx(float(np.median(list(sample))))
    assert scale == pytest.approx(
        float(stats.median_abs_deviation(list(sample), scale="normal")), rel=1e-3
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"close": math.nan}, "BAD_PRICE"),
        ({"open": -1.0}, "BAD_PRICE"),
        ({"high": 1.0, "low": 2.0}, "BAD_RANGE"),
        ({"close": 50.0}, "BAD_RANGE"),
        ({"volume": -1.0}, "NEGATIVE_VOLUME"),
        ({"volume": math.inf}, "NEGATIVE_VOLUME"),
    ],
)
def test_record_rules(fields: dict[str, float], reason: str) -> None:
    record = bar(1, 10.0)
    record.update(fields)
    problem = check_record(record, RULES)
    assert problem is not None
    assert problem[0] == reason


def test_an_open_outside_the_range_is_real_data_and_accepted() -> None:
    assert check_record(bar(1, 10.0, open=10.5), RULES) is None


def test_universe() -> None:
    rules = ValidationRules(universe=frozenset({"BBB"}))
    assert check_record(bar(1, 10.0), rules) == (
        "UNKNOWN_SYMBOL",
        "'AAA' is not in the configured universe",
    )


def test_sequence_rules_and_that_rejects_do_not_move_the_state() -> None:
    guard = SymbolGuard()
    assert validate(bar(10, 10.0), guard, RULES) is None
    assert validate(bar(10, 10.0), guard, RULES)[0] == "DUPLICATE"  # type: ignore[index]
    assert validate(bar(5, 10.0), guard, RULES)[0] == "OUT_OF_ORDER"  # type: ignore[index]
    assert guard.last_ts == 10
    assert validate(bar(11, 10.1), guard, RULES) is None


def test_outlier_is_refused_and_a_confirmed_level_shift_accepted() -> None:
    rng = np.random.default_rng(0)
    guard = SymbolGuard()
    price = 100.0
    for i in range(60):
        price *= math.exp(rng.normal(0, 0.01))
        assert validate(bar(i, price), guard, RULES) is None
    assert validate(bar(100, price * 3), guard, RULES)[0] == "OUTLIER_RETURN"  # type: ignore[index]
    assert validate(bar(101, price * 1.001), guard, RULES) is None  # the neighbour is fine
    shifted = [validate(bar(200 + i, price * 3 * (1 + 0.001 * i)), guard, RULES) for i in range(3)]
    assert [p[0] if p else None for p in shifted] == ["OUTLIER_RETURN", "OUTLIER_RETURN", None]


# --- hostile input: event time far ahead, keys, symbols ------------------------------------

NOW = 1_700_000_000_000
SKEW = RULES.max_future_skew_ms
Y2100 = 4_102_444_800_000  # 2100-01-01T00:00:00Z
DAY = 86_400_000


def test_defaults_of_the_new_rules() -> None:
    assert (RULES.max_future_skew_ms, RULES.replay_max_gap_ms) == (300_000, 0)
    assert RULES.symbol_pattern == r"^[A-Z0-9.\-=^/]{1,32}$"


def test_a_tick_beyond_the_skew_is_future_and_the_bound_itself_is_not() -> None:
    assert check_event_time(NOW + SKEW, NOW, -1, RULES) is None
    problem = check_event_time(NOW + SKEW + 1, NOW, -1, RULES)
    assert problem is not None
    assert problem[0] == "FUTURE_TIMESTAMP"
    assert check_event_time(Y2100, NOW, NOW - 1000, RULES)[0] == "FUTURE_TIMESTAMP"  # type: ignore[index]


def test_the_reference_is_the_later_of_wall_clock_and_partition() -> None:
    # A replay of the future relative to a stale wall clock: the partition's clock rules.
    latest = NOW + 10 * DAY
    assert check_event_time(latest + SKEW, NOW, latest, RULES) is None
    assert check_event_time(latest + SKEW + 1, NOW, latest, RULES)[0] == "FUTURE_TIMESTAMP"  # type: ignore[index]
    # A live partition after a weekend without ticks: the wall clock rules, nothing freezes.
    weekend_ago = NOW - 3 * DAY
    assert check_event_time(NOW + 1000, NOW, weekend_ago, RULES) is None
    assert check_event_time(NOW + SKEW + 1, NOW, weekend_ago, RULES)[0] == "FUTURE_TIMESTAMP"  # type: ignore[index]


def test_the_replay_gap_bounds_history_against_the_partition_clock() -> None:
    rules = ValidationRules(replay_max_gap_ms=7 * DAY)
    y2010, y2015 = 1_262_304_000_000, 1_420_070_400_000
    assert check_event_time(y2015, NOW, y2010, RULES) is None  # off by default: in the past
    assert check_event_time(y2015, NOW, y2010, rules)[0] == "FUTURE_TIMESTAMP"  # type: ignore[index]
    assert check_event_time(y2010 + 7 * DAY, NOW, y2010, rules) is None  # the bound itself
    assert check_event_time(y2010 + 7 * DAY + 1, NOW, y2010, rules) is not None
    assert check_event_time(y2015, NOW, -1, rules) is None  # no partition clock yet


def test_a_rejected_future_tick_does_not_move_the_guard() -> None:
    guard = SymbolGuard()
    assert validate(bar(NOW, 10.0), guard, RULES, NOW, NOW) is None
    assert validate(bar(Y2100, 10.0), guard, RULES, NOW, NOW)[0] == "FUTURE_TIMESTAMP"  # type: ignore[index]
    assert (guard.last_ts, guard.last_close) == (NOW, 10.0)
    assert validate(bar(NOW + 60_000, 10.1), guard, RULES, NOW, NOW) is None
    # Without a wall clock ``validate`` keeps its former checks only.
    assert validate(bar(Y2100, 10.1), SymbolGuard(), RULES) is None


@pytest.mark.parametrize(
    "symbol", ["A", "AAPL", "BRK.B", "BF-B", "^GSPC", "EURUSD=X", "BTC/USD", "ES", "S000", "X" * 32]
)
def test_symbols_of_the_convention_pass(symbol: str) -> None:
    assert check_symbol(symbol, RULES) is None


@pytest.mark.parametrize(
    "symbol", ["", "aapl", "Aapl", "X" * 33, "X" * 10_000, "AAPL\n", " AAPL", "A B", "AAPL;", "É"]
)
def test_other_symbols_are_bad(symbol: str) -> None:
    problem = check_symbol(symbol, RULES)
    assert problem is not None
    assert problem[0] == "BAD_SYMBOL"
    assert len(problem[1]) < 200  # a 10 kB symbol is not copied into the detail


def test_the_symbol_pattern_is_configurable_and_compiled_once() -> None:
    rules = ValidationRules(symbol_pattern=r"[a-z]{1,4}")
    assert rules.symbol_re.pattern == r"[a-z]{1,4}"
    assert check_symbol("aapl", rules) is None
    assert check_symbol("AAPL", rules)[0] == "BAD_SYMBOL"  # type: ignore[index]
    assert check_symbol("aapl1", rules)[0] == "BAD_SYMBOL"  # type: ignore[index]  # fullmatch


def test_keys() -> None:
    assert check_key(b"AAPL", "AAPL") is None
    assert check_key(None, "AAPL")[0] == "KEY_MISMATCH"  # type: ignore[index]
    assert check_key(b"MSFT", "AAPL")[0] == "KEY_MISMATCH"  # type: ignore[index]
    assert check_key(b"", "AAPL")[0] == "KEY_MISMATCH"  # type: ignore[index]


def test_rules_from_settings() -> None:
    settings = load_settings(
        max_future_skew_ms=1000, replay_max_gap_ms=7 * DAY, symbol_pattern=r"[A-Z]{1,5}"
    )
    rules = ValidationRules.from_settings(settings)
    assert (rules.max_future_skew_ms, rules.replay_max_gap_ms) == (1000, 7 * DAY)
    assert rules.symbol_re.pattern == "[A-Z]{1,5}"
    assert ValidationRules.from_settings(load_settings()) == RULES
    with pytest.raises(ConfigError, match="TICKCAST_SYMBOL_PATTERN"):
        ValidationRules.from_settings(load_settings(symbol_pattern="[A-Z"))
    with pytest.raises(ValueError, match="must be >= 0"):
        ValidationRules(max_future_skew_ms=-1)
