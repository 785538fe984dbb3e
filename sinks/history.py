"""History queries for the API (on a client from :func:`sinks.read_endpoint.open_reader`).

With embedded chDB, processes other than the sink read through the sink's guarded read
endpoint (``sinks.read_endpoint``: token, loopback, one SELECT over this database,
``readonly=1``, result and time limits); with a ClickHouse server DSN every process simply
connects to the server.

Every query reads ``FINAL`` so each row appears once whatever the retries wrote; timestamps
come back as integer milliseconds (``*_ms``). Pagination is keyset-based on
``(ts, model_name, model_version, horizon)``: pass the page's ``next_cursor`` back as
``after``; pages never skip or repeat rows, however deep.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from clickhouse_connect.driver.client import Client

# The read path moved to sinks.read_endpoint; these names stay importable from here.
from sinks.read_endpoint import ReadEndpoint as ReadEndpoint
from sinks.read_endpoint import open_reader as open_reader
from tickcast.errors import RequestError

log = structlog.get_logger(__name__)
Row = dict[str, Any]
MAX_PAGE = 10_000


class InvalidCursor(RequestError, ValueError):
    """A pagination cursor that this module did not issue for this query; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid cursor: {reason}")
        self.reason = reason


#: Bounds of a cursor's fields: anything outside is refused before a query is built.
MAX_CURSOR_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_CURSOR_TEXT = 128  # characters of a model name or version
MAX_CURSOR_HORIZON = 65_535  # the UInt16 column
MAX_CURSOR_LENGTH = 1024  # characters of an encoded cursor
_MAC_BYTES = 16
#: Signs cursors of callers that pass no key: valid in this process only.
_PROCESS_KEY = secrets.token_bytes(32)


def derive_cursor_key(secret: str | bytes) -> bytes:
    """The cursor-signing key derived from a secret (``history_cursor_secret`` or the JWT one).

    >>> len(derive_cursor_key("s")), derive_cursor_key("s") == derive_cursor_key(b"s")
    (32, True)
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"tickcast history cursor v1", hashlib.sha256).digest()


def query_binding(
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    kind: str,
    with_outcomes: bool,
    model_name: str | None,
    run_id: str,
    limit: int,
) -> bytes:
    """What a cursor is tied to: every parameter of the query that issued it."""
    fields = [kind, with_outcomes, symbol, start_ms, end_ms, model_name, run_id, limit]
    return json.dumps(fields, separators=(",", ":")).encode()


def _mac(key: bytes, binding: bytes, payload: bytes) -> bytes:
    message = len(binding).to_bytes(4, "big") + binding + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last row of a page: ``(ts_ms, model_name, model_version, horizon)``.

    A token is ``base64url(mac || json)``, the MAC an HMAC-SHA256 of the position and of the
    query it belongs to (:func:`query_binding`): it cannot be forged, edited or replayed on
    another symbol, range, filter or page size, and its fields are range-checked.

    >>> key = derive_cursor_key("secret")
    >>> token = Cursor(1_700_000_000_000, "xgb", "3", 5).encode(key, b"AAPL")
    >>> Cursor.decode(token, key, b"AAPL")
    Cursor(ts_ms=1700000000000, model_name='xgb', model_version='3', horizon=5)
    >>> Cursor.decode(token, key, b"MSFT").ts_ms
    Traceback (most recent call last):
    ...
    sinks.history.InvalidCursor: invalid cursor: not issued for this query (another symbol, range, filter or page size) or altered
    """  # noqa: E501

    ts_ms: int
    model_name: str
    model_version: str
    horizon: int

    def encode(self, key: bytes, binding: bytes = b"") -> str:
        """An opaque URL-safe token for the query ``binding`` describes."""
        fields = [self.ts_ms, self.model_name, self.model_version, self.horizon]
        payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        raw = _mac(key, binding, payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, key: bytes, binding: bytes = b"") -> Cursor:
        """Verify and parse a token from :meth:`encode`; anything else is :class:`InvalidCursor`."""
        if not token or len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor(f"empty or longer than {MAX_CURSOR_LENGTH} characters")
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        except (ValueError, binascii.Error):
            raise InvalidCursor("not base64url") from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if len(mac) < _MAC_BYTES or not hmac.compare_digest(mac, _mac(key, binding, payload)):
            raise InvalidCursor(
                "not issued for this query (another symbol, range, filter or page size) or altered"
            )
        try:
            fields = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise InvalidCursor("malformed") from None
        return cls.checked(fields)

    @classmethod
    def checked(cls, fields: object) -> Cursor:
        """A cursor from ``[ts_ms, model_name, model_version, horizon]`` with every field in
        range (``InvalidCursor`` says which is not).

        >>> Cursor.checked([10**30, "x", "1", 1])
        Traceback (most recent call last):
        ...
        sinks.history.InvalidCursor: invalid cursor: ts_ms out of range
        """
        if not isinstance(fields, list) or len(fields) != 4:
            raise InvalidCursor("malformed")
        ts, model, version, horizon = fields
        bounds = (("ts_ms", ts, MAX_CURSOR_TS_MS), ("horizon", horizon, MAX_CURSOR_HORIZON))
        for name, value, high in bounds:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
                raise InvalidCursor(f"{name} out of range")
        for name, value in (("model_name", model), ("model_version", version)):
            if not isinstance(value, str) or len(value) > MAX_CURSOR_TEXT:
                raise InvalidCursor(f"{name} is not a string of at most {MAX_CURSOR_TEXT}")
        return cls(ts, model, version, horizon)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows and the cursor of the next page (``None`` on the last page)."""

    rows: list[Row]
    next_cursor: str | None


def _rows(client: Client, sql: str, parameters: dict[str, Any]) -> list[Row]:
    result = client.query(sql, parameters=parameters)
    names = result.column_names
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]


_PREDICTION_COLUMNS = (
    "p.symbol AS symbol, toUnixTimestamp64Milli(p.ts) AS ts_ms, p.horizon AS horizon, "
    "p.model_name AS model_name, p.model_version AS model_version, p.role AS role, "
    "p.prob_up AS prob_up, p.expected_return AS expected_return, "
    "p.feature_set_version AS feature_set_version, p.correlation_id AS correlation_id, "
    "p.run_id AS run_id, toUnixTimestamp64Milli(p.produced_at) AS produced_at_ms"
)
_OUTCOME_COLUMNS = (
    "o.symbol AS symbol, toUnixTimestamp64Milli(o.ts) AS ts_ms, o.horizon AS horizon, "
    "o.model_name AS model_name, o.model_version AS model_version, o.role AS role, "
    "o.prob_up AS prob_up, o.expected_return AS expected_return, "
    "o.realized_return AS realized_return, toUnixTimestamp64Milli(o.realized_ts) AS "
    "realized_ts_ms, o.hit AS hit, o.loss AS loss, o.strategy_return AS strategy_return, "
    "o.run_id AS run_id"
)
_JOINED_OUTCOME = (
    ", o.realized_return AS realized_return, toUnixTimestamp64Milli(o.realized_ts) AS "
    "realized_ts_ms, o.hit AS hit, o.loss AS loss, o.strategy_return AS strategy_return"
)
_RANGE = (
    "{a}.run_id = %(run_id)s AND {a}.symbol = %(symbol)s "
    "AND {a}.ts >= fromUnixTimestamp64Milli(%(start_ms)s) "
    "AND {a}.ts < fromUnixTimestamp64Milli(%(end_ms)s)"
)


def history_page(
    client: Client,
    database: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    kind: Literal["predictions", "outcomes"] = "predictions",
    with_outcomes: bool = False,
    model_name: str | None = None,
    run_id: str = "",
    after: str | None = None,
    limit: int = 500,
    cursor_key: bytes | None = None,
) -> Page:
    """Rows of one symbol in ``[start_ms, end_ms)``, ordered by (ts, model, version, horizon).

    ``kind="predictions"`` (with their outcome columns when ``with_outcomes``; null until
    the outcome arrived) or ``"outcomes"``. ``run_id=''`` is live data; a backtest passes
    its run id. ``after`` is the previous page's ``next_cursor``, given back with the same
    arguments: cursors are signed with ``cursor_key`` (default: a key of this process) and
    tied to the query; any other is :class:`InvalidCursor`, before anything is queried.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be within 1..{MAX_PAGE}, got {limit}")
    key = cursor_key or _PROCESS_KEY
    binding = query_binding(
        symbol, start_ms, end_ms, kind=kind, with_outcomes=with_outcomes,
        model_name=model_name, run_id=run_id, limit=limit,
    )  # fmt: skip
    alias = "p" if kind == "predictions" else "o"
    params: dict[str, Any] = {
        "db": database, "run_id": run_id, "symbol": symbol, "start_ms": start_ms,
        "end_ms": end_ms, "limit": limit + 1,
    }  # fmt: skip
    where = [_RANGE.format(a=alias)]
    if model_name is not None:
        where.append(f"{alias}.model_name = %(model_name)s")
        params["model_name"] = model_name
    if after is not None:
        cursor = Cursor.decode(after, key, binding)
        where.append(
            f"({alias}.ts, {alias}.model_name, {alias}.model_version, {alias}.horizon) > "
            "(fromUnixTimestamp64Milli(%(c_ts)s), %(c_model)s, %(c_version)s, %(c_horizon)s)"
        )
        params |= {
            "c_ts": cursor.ts_ms, "c_model": cursor.model_name,
            "c_version": cursor.model_version, "c_horizon": cursor.horizon,
        }  # fmt: skip
    table = f"{database}.{kind}"
    if kind == "outcomes":
        source, columns = f"{table} AS o FINAL", _OUTCOME_COLUMNS
    elif with_outcomes:
        outcomes = f"(SELECT * FROM {database}.outcomes AS o FINAL WHERE {_RANGE.format(a='o')})"
        source = (
            f"{table} AS p FINAL LEFT JOIN {outcomes} AS o ON o.run_id = p.run_id "
            "AND o.symbol = p.symbol AND o.ts = p.ts AND o.model_name = p.model_name "
            "AND o.model_version = p.model_version AND o.horizon = p.horizon"
        )
        columns = _PREDICTION_COLUMNS + _JOINED_OUTCOME
    else:
        source, columns = f"{table} AS p FINAL", _PREDICTION_COLUMNS
    sql = (
        f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} "
        f"ORDER BY {alias}.ts, {alias}.model_name, {alias}.model_version, {alias}.horizon "
        "LIMIT %(limit)s SETTINGS join_use_nulls = 1"
    )
    rows = _rows(client, sql, params)
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    token = Cursor(last["ts_ms"], last["model_name"], last["model_version"], last["horizon"])
    return Page(rows, token.encode(key, binding))


def accuracy_by_model_day(
    client: Client, database: str, start_ms: int, end_ms: int, *, run_id: str = ""
) -> list[Row]:
    """Directional accuracy, mean log loss and summed strategy return per model and day."""
    sql = f"""
        SELECT model_name, model_version, toString(toDate(ts)) AS day, count() AS n,
               avg(hit) AS accuracy, avg(loss) AS mean_loss,
               sum(strategy_return) AS strategy_return
        FROM {database}.outcomes FINAL
        WHERE run_id = %(run_id)s AND ts >= fromUnixTimestamp64Milli(%(start_ms)s)
          AND ts < fromUnixTimestamp64Milli(%(end_ms)s)
        GROUP BY model_name, model_version, day
        ORDER BY day, model_name, model_version"""
    return _rows(client, sql, {"run_id": run_id, "start_ms": start_ms, "end_ms": end_ms})


def psi_by_feature_week(
    client: Client, database: str, start_ms: int, end_ms: int, *, symbol: str = ""
) -> list[Row]:
    """Mean and max PSI, windows and alerts per feature and ISO week (Monday)."""
    sql = f"""
        SELECT feature, toString(toMonday(window_start)) AS week, count() AS windows,
               avg(psi) AS mean_psi, max(psi) AS max_psi, max(ks) AS max_ks,
               countIf(level = 'ALERT') AS alerts, countIf(level = 'WARN') AS warnings
        FROM {database}.drift FINAL
        WHERE symbol = %(symbol)s AND window_start >= fromUnixTimestamp64Milli(%(start_ms)s)
          AND window_start < fromUnixTimestamp64Milli(%(end_ms)s)
        GROUP BY feature, week
        ORDER BY week, feature"""
    return _rows(client, sql, {"symbol": symbol, "start_ms": start_ms, "end_ms": end_ms})


def price_bars(
    client: Client, database: str, symbol: str, start_ms: int, end_ms: int, *, limit: int = 5000
) -> list[Row]:
    """A symbol's closes in ``[start_ms, end_ms)``, oldest first (at most ``limit``, the latest)."""
    sql = f"""
        SELECT ts_ms, close FROM (
            SELECT toUnixTimestamp64Milli(ts) AS ts_ms, close
            FROM {database}.ticks FINAL
            WHERE symbol = %(symbol)s AND ts >= fromUnixTimestamp64Milli(%(start_ms)s)
              AND ts < fromUnixTimestamp64Milli(%(end_ms)s)
            ORDER BY ts DESC LIMIT %(limit)s)
        ORDER BY ts_ms"""
    params = {"symbol": symbol, "start_ms": start_ms, "end_ms": end_ms, "limit": limit}
    return _rows(client, sql, params)


def champion_series(
    client: Client, database: str, symbol: str, start_ms: int, end_ms: int, *, limit: int = 5000
) -> list[Row]:
    """The champion's predictions of a symbol in ``[start_ms, end_ms)`` with their outcomes
    where known (``hit`` null until the bar at t+h arrived), oldest first, live rows only."""
    sql = f"""
        SELECT ts_ms, prob_up, expected_return, model_name, model_version, hit, realized_return
        FROM (
            SELECT toUnixTimestamp64Milli(p.ts) AS ts_ms, p.prob_up AS prob_up,
                   p.expected_return AS expected_return, p.model_name AS model_name,
                   p.model_version AS model_version, o.hit AS hit,
                   o.realized_return AS realized_return
            FROM {database}.predictions AS p FINAL
            LEFT JOIN (SELECT * FROM {database}.outcomes FINAL WHERE run_id = ''
                       AND symbol = %(symbol)s) AS o
              ON o.symbol = p.symbol AND o.ts = p.ts AND o.horizon = p.horizon
             AND o.model_name = p.model_name AND o.model_version = p.model_version
            WHERE p.run_id = '' AND p.role = 'CHAMPION' AND p.symbol = %(symbol)s
              AND p.ts >= fromUnixTimestamp64Milli(%(start_ms)s)
              AND p.ts < fromUnixTimestamp64Milli(%(end_ms)s)
            ORDER BY p.ts DESC LIMIT %(limit)s)
        ORDER BY ts_ms"""
    params = {"symbol": symbol, "start_ms": start_ms, "end_ms": end_ms, "limit": limit}
    return _rows(client, sql, params)


def drift_grid(client: Client, database: str, *, windows: int = 24) -> list[Row]:
    """PSI, KS and level per feature for the latest ``windows`` event-time windows (all
    symbols pooled, ``symbol = ''``), oldest window first."""
    sql = f"""
        SELECT feature, toUnixTimestamp64Milli(window_start) AS window_ms, psi, ks, n, level
        FROM {database}.drift FINAL
        WHERE symbol = '' AND window_start IN (
            SELECT DISTINCT window_start FROM {database}.drift FINAL WHERE symbol = ''
            ORDER BY window_start DESC LIMIT %(windows)s)
        ORDER BY window_ms, feature"""
    return _rows(client, sql, {"windows": windows})


def model_events(client: Client, database: str, *, limit: int = 50) -> list[Row]:
    """The latest model events (promotions, rollbacks, refusals, checkpoints), newest first."""
    sql = f"""
        SELECT event_type, model_name, version, from_version, role, reason, actor,
               toUnixTimestamp64Milli(ts) AS ts_ms
        FROM {database}.model_events FINAL
        ORDER BY ts DESC LIMIT %(limit)s"""
    return _rows(client, sql, {"limit": limit})
