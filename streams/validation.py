"""Validation of decoded ticks: pure rules over a small per-symbol guard state.

Reason codes (the ``DeadLetter.reason`` values):

=================  ===============================================================
UNDECODABLE        the payload is not a tickcast Avro record (raised by the codec)
SCHEMA_MISMATCH    the writer schema is unknown or incompatible (raised by the codec)
BAD_PRICE          a price is NaN, infinite, or not positive
BAD_RANGE          high < low, or close outside [low, high] (an open outside the range
                   is accepted: real feeds print it, e.g. 78 bars of the S&P 500 data set)
NEGATIVE_VOLUME    volume is negative or not finite
DUPLICATE          the same event again (same time and sequence, or same time and print)
OUT_OF_ORDER       event time earlier than the symbol's last by more than the tolerance
OUTLIER_RETURN     |robust z-score| of the log return over recent returns above threshold
                   (median and MAD of the last 50 returns, refreshed every 10 returns)
UNKNOWN_SYMBOL     a universe is configured and the symbol is not in it
FUTURE_TIMESTAMP   event time more than ``max_future_skew_ms`` (default 5 minutes) ahead of
                   the reference max(wall clock, the partition's latest accepted event time);
                   or, when ``replay_max_gap_ms`` > 0, more than that ahead of the partition's
                   latest accepted event time (a bound for replays of history)
KEY_MISMATCH       the Kafka record has no key, or its key is not the UTF-8 symbol (a symbol's
                   ticks must all land in the partition that owns the symbol)
BAD_SYMBOL         the symbol does not fully match ``symbol_pattern`` (default
                   ``^[A-Z0-9.\\-=^/]{1,32}$``: upper case, digits, ``. - = ^ /``, 1 to 32 long)
=================  ===============================================================

BAD_SYMBOL and KEY_MISMATCH are decided before any state of the symbol is loaded or created
(:func:`check_symbol`, :func:`check_key`), so a garbage symbol never gets state or a Redis key.

A rejected tick never enters the price history or return window, so one bad record cannot poison its
neighbours. A genuine level shift is accepted after ``outlier_confirmations`` consecutive
outliers that agree with each other (otherwise a symbol that gapped would be stuck).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tickcast.errors import ConfigError

if TYPE_CHECKING:
    from tickcast.config import Settings

PRICE_FIELDS = ("open", "high", "low", "close")
DEFAULT_SYMBOL_PATTERN = r"^[A-Z0-9.\-=^/]{1,32}$"
DEFAULT_MAX_FUTURE_SKEW_MS = 5 * 60_000


@dataclass(frozen=True)
class ValidationRules:
    """Configuration of the checks (all in event time, except the wall-clock skew bound)."""

    out_of_order_tolerance_ms: int = 0
    outlier_z: float = 20.0
    outlier_window: int = 50
    outlier_min_samples: int = 20
    outlier_confirmations: int = 3
    outlier_refresh: int = 10
    universe: frozenset[str] | None = None
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
    """FUTURE_TIMESTAMP beyond max(wall clock, partition's latest event time) + this."""
    replay_max_gap_ms: int = 0
    """When > 0, FUTURE_TIMESTAMP also beyond the partition's latest event time + this."""
    symbol_pattern: str = DEFAULT_SYMBOL_PATTERN
    """A symbol must ``fullmatch`` this regular expression, else BAD_SYMBOL."""
    symbol_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_future_skew_ms < 0 or self.replay_max_gap_ms < 0:
            raise ValueError("max_future_skew_ms and replay_max_gap_ms must be >= 0")
        # Compiled once here (an invalid pattern fails at start-up, not on the first tick).
        object.__setattr__(self, "symbol_re", re.compile(self.symbol_pattern))

    @classmethod
    def from_settings(cls, settings: Settings) -> ValidationRules:
        """The rules a worker runs with: defaults plus the ``TICKCAST_*`` validation settings."""
        try:
            return cls(
                max_future_skew_ms=settings.max_future_skew_ms,
                replay_max_gap_ms=settings.replay_max_gap_ms,
                symbol_pattern=settings.symbol_pattern,
            )
        except re.error as exc:
            raise ConfigError(
                f"TICKCAST_SYMBOL_PATTERN {settings.symbol_pattern!r} is not a regular "
                f"expression: {exc}"
            ) from None


@dataclass
class SymbolGuard:
    """What validation remembers per symbol: bounded (a fixed-size window of returns)."""

    window: int = 50
    last_ts: int = -1
    last_close: float = math.nan
    last_seq: int | None = None
    last_print: tuple[float, float] = (math.nan, math.nan)
    returns: deque[float] = field(default_factory=deque)
    pending_outliers: int = 0
    pending_close: float = math.nan
    center: float = math.nan
    scale: float = math.nan
    stats_age: int = 0

    def __post_init__(self) -> None:
        self.returns = deque(self.returns, maxlen=self.window)


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def robust_center_scale(sample: deque[float]) -> tuple[float, float]:
    """Median and 1.4826 × MAD (the normal-consistent robust scale) of a sample."""
    median = _median(sorted(sample))
    return median, 1.4826 * _median(sorted(abs(x - median) for x in sample))


def _robust_z(value: float, guard: SymbolGuard, refresh: int) -> float:
    # The median and MAD of 50 returns move slowly: recomputing them (two sorts) every
    # ``refresh`` accepted returns instead of every tick costs the same decisions in practice
    # and a fraction of the time (the worker profile showed them at ~5 %).
    if guard.stats_age <= 0 or guard.scale != guard.scale:
        guard.center, guard.scale = robust_center_scale(guard.returns)
        guard.stats_age = refresh
    if guard.scale <= 0.0:
        return 0.0
    return (value - guard.center) / guard.scale


def _clip(value: object, limit: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def check_symbol(symbol: str, rules: ValidationRules) -> tuple[str, str] | None:
    """BAD_SYMBOL unless ``symbol`` fully matches the configured pattern."""
    if rules.symbol_re.fullmatch(symbol) is None:
        return "BAD_SYMBOL", f"symbol {_clip(symbol)} does not match {rules.symbol_pattern!r}"
    return None


def check_key(key: bytes | None, symbol: str) -> tuple[str, str] | None:
    """KEY_MISMATCH unless the Kafka key is the UTF-8 symbol (a keyless record included)."""
    if key is None:
        return "KEY_MISMATCH", f"record has no key (symbol {symbol!r})"
    if key != symbol.encode():
        return "KEY_MISMATCH", f"key {_clip(key)} does not match symbol {symbol!r}"
    return None


def check_event_time(
    ts: int, now_ms: int, partition_latest: int, rules: ValidationRules
) -> tuple[str, str] | None:
    """FUTURE_TIMESTAMP when ``ts`` is too far ahead of the wall clock and the partition.

    The reference is max(``now_ms``, ``partition_latest``): a live feed is bounded by the
    wall clock (and never freezes after a night or weekend without ticks), a replay of
    history by the partition's own clock. ``partition_latest`` < 0 means not known yet.
    """
    reference = max(now_ms, partition_latest)
    if ts > reference + rules.max_future_skew_ms:
        return "FUTURE_TIMESTAMP", (
            f"event time {ts} is {ts - reference} ms ahead of the reference {reference} "
            f"(max(now, partition latest); skew allowed {rules.max_future_skew_ms} ms)"
        )
    gap = rules.replay_max_gap_ms
    if gap > 0 and partition_latest >= 0 and ts > partition_latest + gap:
        return "FUTURE_TIMESTAMP", (
            f"event time {ts} is {ts - partition_latest} ms ahead of the partition's latest "
            f"{partition_latest} (replay gap allowed {gap} ms)"
        )
    return None


def check_record(tick: Mapping[str, Any], rules: ValidationRules) -> tuple[str, str] | None:
    """Stateless checks: a ``(reason, detail)`` or None when the record itself is sane."""
    symbol = tick["symbol"]
    if rules.universe is not None and symbol not in rules.universe:
        return "UNKNOWN_SYMBOL", f"{symbol!r} is not in the configured universe"
    for name in PRICE_FIELDS:
        value = tick[name]
        if not (value > 0.0 and math.isfinite(value)):
            return "BAD_PRICE", f"{name}={value!r} is not a positive finite price"
    low, high = tick["low"], tick["high"]
    if high < low:
        return "BAD_RANGE", f"high {high} < low {low}"
    if not low <= tick["close"] <= high:
        return "BAD_RANGE", f"close {tick['close']} outside [low {low}, high {high}]"
    volume = tick["volume"]
    if not (volume >= 0.0 and math.isfinite(volume)):
        return "NEGATIVE_VOLUME", f"volume={volume!r} is negative or not finite"
    return None


def check_sequence(
    tick: Mapping[str, Any], guard: SymbolGuard, rules: ValidationRules
) -> tuple[str, str] | None:
    """Checks against the symbol's history; updates ``guard`` only when the tick passes."""
    ts = tick["ts"]
    seq = tick.get("sequence")
    if ts == guard.last_ts:
        same_print = (tick["close"], tick["volume"]) == guard.last_print
        if (seq is not None and seq == guard.last_seq) or (seq is None and same_print):
            return "DUPLICATE", f"event at {ts} already seen"
        if tick.get("kind") == "BAR":
            return "DUPLICATE", f"a second bar at {ts}"
    elif ts < guard.last_ts - rules.out_of_order_tolerance_ms:
        return "OUT_OF_ORDER", f"event time {ts} < last {guard.last_ts} for {tick['symbol']}"
    close = tick["close"]
    if guard.last_close == guard.last_close:  # not NaN: a previous close exists
        ret = math.log(close / guard.last_close)
        if len(guard.returns) >= rules.outlier_min_samples:
            z = _robust_z(ret, guard, rules.outlier_refresh)
            if abs(z) > rules.outlier_z and not _confirms_shift(guard, close, rules):
                return "OUTLIER_RETURN", f"log return {ret:.4g} has robust z {z:.1f}"
        guard.returns.append(ret)
        guard.stats_age -= 1
    guard.pending_outliers = 0
    guard.last_ts = max(ts, guard.last_ts)
    guard.last_close = close
    guard.last_seq = seq
    guard.last_print = (close, tick["volume"])
    return None


def _confirms_shift(guard: SymbolGuard, close: float, rules: ValidationRules) -> bool:
    """Count agreeing consecutive outliers; True when a level shift is confirmed."""
    agrees = guard.pending_outliers and abs(math.log(close / guard.pending_close)) < 0.05
    guard.pending_outliers = guard.pending_outliers + 1 if agrees else 1
    guard.pending_close = close
    return guard.pending_outliers >= rules.outlier_confirmations


def validate(
    tick: Mapping[str, Any],
    guard: SymbolGuard,
    rules: ValidationRules,
    now_ms: int | None = None,
    partition_latest: int = -1,
) -> tuple[str, str] | None:
    """The per-tick checks; None when the tick is good (and then ``guard`` has taken it in).

    The event-time bound runs when ``now_ms`` is given. :func:`check_symbol` and
    :func:`check_key` are not included: a caller runs them before it loads any state.
    """
    return (
        check_record(tick, rules)
        or (
            check_event_time(tick["ts"], now_ms, partition_latest, rules)
            if now_ms is not None
            else None
        )
        or check_sequence(tick, guard, rules)
    )
