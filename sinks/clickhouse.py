"""ClickHouse access through clickhouse-connect: embedded chDB (``chdb://<path>``) or a server.

The same client API serves both; which one is decided by the DSN alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.health import Health
from tickcast.redaction import redact


def connect(
    settings: Settings, dsn: str | None = None, *, client_settings: dict[str, str] | None = None
) -> Client:
    """A client for the configured DSN; the database is created by :func:`migrate`.

    ``client_settings`` are session settings of the client, applied in order (the read
    endpoint's ``readonly=1`` handles).
    """
    target = dsn or settings.clickhouse
    url = urlparse(target)
    options: dict[str, Any] = {"settings": client_settings} if client_settings else {}
    try:
        if url.scheme == "chdb":
            Path(url.path or url.netloc).mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=target, **options)
        return clickhouse_connect.get_client(
            dsn=target, connect_timeout=3, send_receive_timeout=30, **options
        )
    except Exception as exc:
        raise DependencyError(
            "clickhouse", f"cannot open {target}: {exc}", "check TICKCAST_CLICKHOUSE_DSN"
        ) from exc


def check(settings: Settings, client: Client | None = None) -> Health:
    """Run ``SELECT version()`` against the configured ClickHouse."""
    start = time.perf_counter()
    try:
        own = client or connect(settings)
        version = own.query("SELECT version()").result_rows[0][0]
    except Exception as exc:
        return Health(
            "clickhouse",
            False,
            redact(f"{settings.clickhouse}: {exc}").splitlines()[0][:300],
            "check TICKCAST_CLICKHOUSE_DSN (chdb://<path> or http(s)://host:port)",
            time.perf_counter() - start,
        )
    kind = "chDB (embedded)" if settings.clickhouse.startswith("chdb") else "server"
    return Health(
        "clickhouse",
        True,
        redact(f"ClickHouse {version}, {kind}, {settings.clickhouse}"),
        seconds=time.perf_counter() - start,
    )


def scalar(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> Any:
    """The first column of the first row of a query."""
    rows = client.query(sql, parameters=parameters).result_rows
    return rows[0][0] if rows else None
