"""Pure parts of the history module: cursors and the read-only statement filter."""

from __future__ import annotations

import pytest

from sinks.history import Cursor, InvalidCursor, is_read_only


def test_cursor_round_trip() -> None:
    cursor = Cursor(1_700_000_000_000, "lgbm/β", "12", 3)
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("token", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyJhIiwiYiIsImMiLDFd"])
def test_bad_cursor_is_typed(token: str) -> None:
    with pytest.raises(InvalidCursor):
        Cursor.decode(token)


@pytest.mark.parametrize(
    ("sql", "ok"),
    [
        ("SELECT 1", True),
        ("  select * from db.t FINAL FORMAT Native", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("(SELECT 1) UNION ALL (SELECT 2)", True),
        ("-- comment\nSHOW TABLES", True),
        ("SELECT 1;", True),
        ("INSERT INTO t VALUES (1)", False),
        ("DROP TABLE t", False),
        ("ALTER TABLE t DELETE WHERE 1", False),
        ("SELECT 1; DROP TABLE t", False),
        ("/* SELECT */ TRUNCATE t", False),
    ],
)
def test_read_only_filter(sql: str, ok: bool) -> None:
    assert is_read_only(sql) is ok
