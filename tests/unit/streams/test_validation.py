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
    check_record,
    robust_center_scale,
    validate,
)

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
