"""Pure parts of the history module: signed, bounded cursors (the read endpoint's SQL guard
is tested in test_sql_guard.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from sinks.history import (
    MAX_CURSOR_LENGTH,
    Cursor,
    InvalidCursor,
    derive_cursor_key,
    query_binding,
)

KEY = derive_cursor_key("unit-test-secret")
T0 = 1_700_000_000_000


def binding(symbol: str = "AAPL", **changes: Any) -> bytes:
    """The binding of a history query, with ``changes`` to its defaults."""
    args: dict[str, Any] = {
        "start_ms": T0, "end_ms": T0 + 60_000, "kind": "predictions", "with_outcomes": False,
        "model_name": None, "run_id": "", "limit": 500,
    } | changes  # fmt: skip
    start, end = args.pop("start_ms"), args.pop("end_ms")
    return query_binding(symbol, start, end, **args)


def unsigned(fields: list[Any]) -> str:
    """The pre-signing cursor format (base64url JSON), as the probe sent it."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def signed(fields: list[Any], key: bytes = KEY, bound: bytes | None = None) -> str:
    """A correctly signed token around arbitrary ``fields`` (what a key holder could mint)."""
    payload = json.dumps(fields).encode()
    bound = binding() if bound is None else bound
    message = len(bound).to_bytes(4, "big") + bound + payload
    mac = hmac.new(key, message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def test_cursor_round_trip() -> None:
    cursor = Cursor(1_700_000_000_000, "lgbm/β", "12", 3)
    assert Cursor.decode(cursor.encode(KEY, binding()), KEY, binding()) == cursor


@pytest.mark.parametrize(
    "token", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyJhIiwiYiIsImMiLDFd", "A" * 2000]
)
def test_bad_cursor_is_typed(token: str) -> None:
    with pytest.raises(InvalidCursor):
        Cursor.decode(token, KEY, binding())


def test_the_probes_unsigned_cursor_is_refused_before_any_query() -> None:
    with pytest.raises(InvalidCursor, match="not issued for this query"):
        Cursor.decode(unsigned([1e30, "x", "1", 1]), KEY, binding())
    with pytest.raises(InvalidCursor, match="not issued for this query"):
        Cursor.decode(unsigned([T0, "xgb", "3", 5]), KEY, binding())


@pytest.mark.parametrize(
    "changes",
    [
        {"symbol": "MSFT"},
        {"start_ms": T0 + 1},
        {"end_ms": T0 + 1},
        {"kind": "outcomes"},
        {"with_outcomes": True},
        {"model_name": "xgb"},
        {"run_id": "bt-1"},
        {"limit": 499},
    ],
)
def test_a_cursor_is_tied_to_its_query(changes: dict[str, Any]) -> None:
    token = Cursor(T0, "xgb", "3", 5).encode(KEY, binding())
    assert Cursor.decode(token, KEY, binding()).ts_ms == T0
    with pytest.raises(InvalidCursor, match="not issued for this query"):
        Cursor.decode(token, KEY, binding(**changes))


def test_a_cursor_signed_with_another_key_or_altered_is_refused() -> None:
    token = Cursor(T0, "xgb", "3", 5).encode(KEY, binding())
    with pytest.raises(InvalidCursor, match="not issued"):
        Cursor.decode(token, derive_cursor_key("another-secret"), binding())
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-3] ^= 1  # flip one bit of the position
    altered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(InvalidCursor, match="not issued"):
        Cursor.decode(altered, KEY, binding())


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([10**30, "x", "1", 1], "ts_ms out of range"),
        ([1e30, "x", "1", 1], "ts_ms out of range"),
        ([-1, "x", "1", 1], "ts_ms out of range"),
        ([253_402_300_800_000, "x", "1", 1], "ts_ms out of range"),
        ([True, "x", "1", 1], "ts_ms out of range"),
        ([T0, "x", "1", -1], "horizon out of range"),
        ([T0, "x", "1", 65_536], "horizon out of range"),
        ([T0, "x", "1", "1"], "horizon out of range"),
        ([T0, "x" * 129, "1", 1], "model_name"),
        ([T0, 7, "1", 1], "model_name"),
        ([T0, "x", ["1"], 1], "model_version"),
        ([T0, "x", "1"], "malformed"),
        ({"ts": T0}, "malformed"),
    ],
)
def test_every_field_is_range_checked_even_when_signed(fields: Any, reason: str) -> None:
    """Bounds hold even for a validly signed cursor (a leaked key cannot reach the query)."""
    with pytest.raises(InvalidCursor, match=reason):
        Cursor.decode(signed(fields), KEY, binding())


def test_bounds_accept_the_extremes() -> None:
    for fields in ([0, "", "", 0], [253_402_300_799_999, "m" * 128, "v" * 128, 65_535]):
        token = signed(fields)
        assert len(token) <= MAX_CURSOR_LENGTH
        assert Cursor.decode(token, KEY, binding()) == Cursor(*fields)
