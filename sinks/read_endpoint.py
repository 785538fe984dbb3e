"""The read path to an embedded chDB another process owns: the sink's endpoint and its clients.

**chDB is single-process.** A chDB data directory is locked by the process that opens it
(``Cannot lock file <path>/status. Another server instance in same directory is already
running``); a second process cannot open it, not even read-only (``?mode=ro``), while the
sink writes. So, with the embedded default, the sink process owns the data and serves a
small ClickHouse-HTTP-compatible read endpoint (:class:`ReadEndpoint`); other processes read
through it with an ordinary clickhouse-connect HTTP client (:func:`open_reader`). With a
ClickHouse server DSN every process simply connects to the server.

The endpoint runs SQL on the engine that holds every table, so it is guarded in depth:

1. it listens on ``TICKCAST_CLICKHOUSE_READ_HOST`` (127.0.0.1 by default);
2. every request carries ``Authorization: Bearer <read token>`` (HTTP 401 otherwise): the
   token is ``TICKCAST_CLICKHOUSE_READ_TOKEN`` or, when that is empty, a random one the first
   process that needs it writes to ``<data_dir>/clickhouse-read.token`` with mode 0600, so only
   the user running tickcast (the sink and the API) can read it;
3. the statement must pass :func:`sinks.sql_guard.check_read_query` (HTTP 403 with the
   reason): one SELECT over the endpoint's database, no table function, file, URL,
   ``INTO OUTFILE``, setting change, comment or second statement;
4. the engine handle it runs on is ``readonly=1`` with ``max_result_rows``,
   ``max_result_bytes`` and ``max_execution_time`` from the settings
   (``TICKCAST_CLICKHOUSE_READ_MAX_ROWS``, ``..._MAX_BYTES``, ``..._TIMEOUT_S``), and a result
   longer than ``max_result_bytes`` is not sent.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import clickhouse_connect
import structlog
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import connect
from sinks.sql_guard import RefusedQuery, check_read_query
from tickcast.config import MIN_SECRET_BYTES, Settings, is_loopback
from tickcast.errors import DependencyError
from tickcast.redaction import redact

log = structlog.get_logger(__name__)
TOKEN_FILE = "clickhouse-read.token"
#: Largest request body (SQL) the endpoint reads.
MAX_BODY_BYTES = 1024 * 1024


def _load_token(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise DependencyError(
            "clickhouse", f"{path} can be read by other users (mode {oct(mode & 0o777)})",
            f"chmod 600 {path}, or set TICKCAST_CLICKHOUSE_READ_TOKEN",
        )  # fmt: skip
    token = path.read_text(encoding="utf-8").strip()
    if len(token.encode()) < MIN_SECRET_BYTES:
        raise DependencyError(
            "clickhouse", f"{path} holds a token shorter than {MIN_SECRET_BYTES} bytes",
            "delete it (a new one is generated) or set TICKCAST_CLICKHOUSE_READ_TOKEN",
        )  # fmt: skip
    return token


def read_token(settings: Settings) -> str:
    """The read endpoint's bearer token: the setting, else the token file (made if absent).

    The file is written whole under a temporary name (mode 0600) and hard-linked into place,
    so processes starting together agree on one token and none reads a half-written file.
    """
    configured = settings.clickhouse_read_token.get_secret_value()
    if configured:
        return configured
    path = Path(settings.data_dir) / TOKEN_FILE
    if path.exists():
        return _load_token(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process was first: use its token
            os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    log.info("read token created", path=str(path))
    return _load_token(path)


def _url(host: str, port: int) -> str:
    """Where a local client reaches an endpoint bound to ``host`` (a wildcard is loopback)."""
    host = "127.0.0.1" if host in {"", "0.0.0.0", "::"} else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def engine_settings(settings: Settings) -> dict[str, str]:
    """Session settings of the endpoint's engine handles; ``readonly`` comes last, because
    after it no setting can be changed (the guard lets queries name ``join_use_nulls``)."""
    return {
        "join_use_nulls": "1",
        "max_result_rows": str(settings.clickhouse_read_max_rows),
        "max_result_bytes": str(settings.clickhouse_read_max_bytes),
        "result_overflow_mode": "throw",
        "max_execution_time": str(settings.clickhouse_read_timeout_s),
        "timeout_overflow_mode": "throw",
        "readonly": "1",
    }


class ReadEndpoint:
    """A guarded, read-only ClickHouse-HTTP subset served from the process that owns chDB.

    Enough of the protocol for clickhouse-connect's HTTP client: SQL in the POST body (or
    the ``query`` parameter), ``database`` and ``param_<name>`` URL parameters, the result
    in the format the SQL names (``FORMAT Native`` from clickhouse-connect). See the module
    docstring for what it refuses (401 without the token, 403 for a refused statement).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int = 0,
        token: str | None = None,
    ) -> None:
        self.settings = settings
        self.host = host or settings.clickhouse_read_host
        self.port = port
        self.token = token
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` to give clickhouse-connect."""
        return _url(self.host, self.port)

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this endpoint's token."""
        expected = f"Bearer {self.token or read_token(self.settings)}".encode()
        return hmac.compare_digest((header or "").strip().encode(), expected)

    def _client(self, database: str) -> Client:
        with self._lock:
            client = self._clients.get(database)
            if client is None:
                client = connect(self.settings, client_settings=engine_settings(self.settings))
                if database:
                    client.database = database
                self._clients[database] = client
            return client

    def execute(self, sql: str, database: str, params: dict[str, str]) -> bytes:
        """Run one guarded read statement; :class:`RefusedQuery` for anything else."""
        own = self.settings.clickhouse_database
        if database not in {"", own}:
            raise RefusedQuery(f"database {database!r}: this endpoint serves {own} only")
        check_read_query(sql, own)
        out = bytes(self._client(database).raw_query(sql, parameters=params or None))
        if len(out) > self.settings.clickhouse_read_max_bytes:
            raise ValueError(
                f"Code: 396. DB::Exception: result of {len(out)} bytes exceeds "
                f"max_result_bytes {self.settings.clickhouse_read_max_bytes}"
            )
        return out

    def _answer(self, sql: str, query: dict[str, list[str]], peer: str) -> tuple[int, bytes]:
        params = {k[6:]: v[0] for k, v in query.items() if k.startswith("param_")}
        database = query.get("database", [""])[0]
        try:
            return 200, self.execute(sql, database, params)
        except RefusedQuery as exc:
            log.warning("read endpoint refused a query", reason=exc.reason, peer=peer)
            return 403, f"Code: 164. DB::Exception: refused: {exc.reason}. (READONLY)".encode()
        except Exception as exc:  # the engine's message goes back to the (authorized) client
            return 500, redact(str(exc)).encode()

    def start(self) -> ReadEndpoint:
        """Serve in a daemon thread; raises DependencyError when the port is taken."""
        endpoint = self
        self.token = self.token or read_token(self.settings)
        if not is_loopback(self.host):
            log.warning("read endpoint listens beyond loopback", host=self.host)

        class Handler(BaseHTTPRequestHandler):
            def _reply(
                self, status: int, out: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in {
                    "Content-Type": "application/octet-stream" if status == 200 else "text/plain",
                    "X-ClickHouse-Timezone": "UTC",
                    "Content-Length": str(len(out)),
                    **(headers or {}),
                }.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:
                if not endpoint.authorized(self.headers.get("Authorization")):
                    self._reply(
                        401,
                        b"Code: 516. DB::Exception: authentication required: send "
                        b"Authorization: Bearer <read token>. (AUTHENTICATION_FAILED)",
                        {"WWW-Authenticate": 'Bearer realm="tickcast-clickhouse-read"'},
                    )
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY_BYTES:
                    self._reply(413, f"body must be 0..{MAX_BODY_BYTES} bytes".encode())
                    return
                query = parse_qs(urlparse(self.path).query)
                try:
                    body = self.rfile.read(length).decode("utf-8") if length else ""
                except UnicodeDecodeError:
                    self._reply(400, b"Code: 27. DB::Exception: the query is not UTF-8")
                    return
                sql = " ".join(p for p in (query.get("query", [""])[0], body) if p)
                self._reply(*endpoint._answer(sql, query, self.client_address[0]))

            do_GET = do_POST

            def log_message(self, *_: Any) -> None:
                return

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise DependencyError(
                "clickhouse", f"read endpoint cannot listen on {self.host}:{self.port}: {exc}",
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
    :class:`ReadEndpoint` (``url`` or ``http://<clickhouse_read_host>:<clickhouse_read_port>``)
    sending the read token, or, with ``direct=True``, the chDB engine itself — only safe in
    the process that owns it or when no sink runs (opening it takes the lock the sink needs).
    """
    if not settings.clickhouse.startswith("chdb") or direct:
        return connect(settings)
    target = url or _url(settings.clickhouse_read_host, settings.clickhouse_read_port)
    try:
        return clickhouse_connect.get_client(
            dsn=target, compress=False, connect_timeout=2,
            send_receive_timeout=settings.clickhouse_read_timeout_s + 5,
            access_token=read_token(settings),
        )  # fmt: skip
    except Exception as exc:
        raise DependencyError(
            "clickhouse", f"no history read endpoint at {target}: {exc}",
            "run `tickcast sink run` (it owns embedded chDB and serves reads) "
            "or set TICKCAST_CLICKHOUSE_DSN to a ClickHouse server",
        ) from exc  # fmt: skip
