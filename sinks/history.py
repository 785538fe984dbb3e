"""History queries for the API, and the read path to an embedded chDB another process owns.

**chDB is single-process.** A chDB data directory is locked by the process that opens it
(``Cannot lock file <path>/status. Another server instance in same directory is already
running``); a second process cannot open it, not even read-only (``?mode=ro``), while the
sink writes. So, with the embedded default, the sink process owns the data and serves a
small, read-only, ClickHouse-HTTP-compatible endpoint (:class:`ReadEndpoint`, 127.0.0.1,
``TICKCAST_CLICKHOUSE_READ_PORT``); other processes read through it with an ordinary
clickhouse-connect HTTP client (:func:`open_reader`). With a ClickHouse server DSN every
process simply connects to the server.

Every query reads ``FINAL`` so each row appears once whatever the retries wrote; timestamps
come back as integer milliseconds (``*_ms``). Pagination is keyset-based on
``(ts, model_name, model_version, horizon)``: pass the page's ``next_cursor`` back as
``after``; pages never skip or repeat rows, however deep.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

import clickhouse_connect
import structlog
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import connect
from tickcast.config import Settings
from tickcast.errors import DependencyError

log = structlog.get_logger(__name__)
Row = dict[str, Any]
MAX_PAGE = 10_000


class InvalidCursor(ValueError):
    """A pagination cursor that this module did not produce (or that was tampered with)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last row of a page: ``(ts_ms, model_name, model_version, horizon)``.

    >>> Cursor.decode(Cursor(1_700_000_000_000, "xgb", "3", 5).encode())
    Cursor(ts_ms=1700000000000, model_name='xgb', model_version='3', horizon=5)
    """

    ts_ms: int
    model_name: str
    model_version: str
    horizon: int

    def encode(self) -> str:
        """An opaque URL-safe token."""
        raw = json.dumps([self.ts_ms, self.model_name, self.model_version, self.horizon])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a token from :meth:`encode`; anything else raises :class:`InvalidCursor`."""
        try:
            padded = token + "=" * (-len(token) % 4)
            ts, model, version, horizon = json.loads(base64.urlsafe_b64decode(padded))
            if not (isinstance(ts, int) and isinstance(horizon, int)):
                raise TypeError("ts and horizon must be integers")
            return cls(ts, str(model), str(version), horizon)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidCursor(f"invalid cursor {token[:40]!r}") from exc


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
) -> Page:
    """Rows of one symbol in ``[start_ms, end_ms)``, ordered by (ts, model, version, horizon).

    ``kind="predictions"`` (with their outcome columns when ``with_outcomes``; null until
    the outcome arrived) or ``"outcomes"``. ``run_id=''`` is live data; a backtest passes
    its run id. ``after`` is the previous page's ``next_cursor``.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be within 1..{MAX_PAGE}, got {limit}")
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
        cursor = Cursor.decode(after)
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
    return Page(rows, token.encode())


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


# --- read path --------------------------------------------------------------------------------
_READ_STATEMENT = re.compile(r"^\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def is_read_only(sql: str) -> bool:
    """True for one SELECT-like statement (the endpoint refuses everything else).

    >>> is_read_only("SELECT 1 FORMAT Native"), is_read_only("/* x */ WITH 1 AS a SELECT a")
    (True, True)
    >>> is_read_only("INSERT INTO t SELECT 1"), is_read_only("SELECT 1; DROP TABLE t")
    (False, False)
    """
    text = _COMMENTS.sub(" ", sql).strip().rstrip(";")
    return ";" not in text and _READ_STATEMENT.match(text) is not None


class ReadEndpoint:
    """A read-only ClickHouse-HTTP subset served from the process that owns chDB.

    Enough of the protocol for clickhouse-connect's HTTP client: SQL in the POST body (or
    the ``query`` parameter), ``database`` and ``param_<name>`` URL parameters, the result
    in the format the SQL names (``FORMAT Native`` from clickhouse-connect). Anything but
    one SELECT-like statement gets HTTP 403. It listens on 127.0.0.1 only and has no auth.
    """

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` to give clickhouse-connect."""
        return f"http://{self.host}:{self.port}"

    def _client(self, database: str) -> Client:
        with self._lock:
            client = self._clients.get(database)
            if client is None:
                client = connect(self.settings)
                if database:
                    client.database = database
                self._clients[database] = client
            return client

    def execute(self, sql: str, database: str, params: dict[str, str]) -> bytes:
        """Run one read statement; ``PermissionError`` for anything else."""
        if not is_read_only(sql):
            raise PermissionError("read-only endpoint: only SELECT-like statements")
        client = self._client(database)
        return bytes(client.raw_query(sql, parameters=params or None))

    def start(self) -> ReadEndpoint:
        """Serve in a daemon thread; raises DependencyError when the port is taken."""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                sql = " ".join(p for p in (query.get("query", [""])[0], body) if p)
                params = {k[6:]: v[0] for k, v in query.items() if k.startswith("param_")}
                database = query.get("database", [""])[0]
                try:
                    out, status = endpoint.execute(sql, database, params), 200
                except PermissionError as exc:
                    out, status = f"Code: 164. DB::Exception: {exc}".encode(), 403
                except Exception as exc:  # the engine's message goes back to the client
                    out, status = str(exc).encode(), 500
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("X-ClickHouse-Timezone", "UTC")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST

            def log_message(self, *_: Any) -> None:
                return

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise DependencyError(
                "clickhouse", f"read endpoint cannot listen on {self.port}: {exc}",
                "set TICKCAST_CLICKHOUSE_READ_PORT to a free port",
            ) from exc  # fmt: skip
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="clickhouse-read", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the engine handles."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def open_reader(settings: Settings, *, direct: bool = False, url: str | None = None) -> Client:
    """A client for history queries.

    A ClickHouse server DSN: a client of the server. Embedded chDB: a client of the sink's
    :class:`ReadEndpoint` (``url`` or ``http://127.0.0.1:<clickhouse_read_port>``), or, with
    ``direct=True``, the chDB engine itself — only safe in the process that owns it or when
    no sink runs (opening it takes the lock the sink needs).
    """
    if not settings.clickhouse.startswith("chdb") or direct:
        return connect(settings)
    target = url or f"http://127.0.0.1:{settings.clickhouse_read_port}"
    try:
        return clickhouse_connect.get_client(
            dsn=target, compress=False, connect_timeout=2, send_receive_timeout=30
        )
    except Exception as exc:
        raise DependencyError(
            "clickhouse", f"no history read endpoint at {target}: {exc}",
            "run `tickcast sink run` (it owns embedded chDB and serves reads) "
            "or set TICKCAST_CLICKHOUSE_DSN to a ClickHouse server",
        ) from exc  # fmt: skip
