"""ClickHouse: the database through ClickHouse's own ``BACKUP`` / ``RESTORE``.

Embedded chDB runs them too once its configuration allows a backup path
(``backups.allowed_path``): the client here opens chDB with a small configuration file that
allows the backup's folder. chDB locks its data folder for one process at a time, so the
ClickHouse part of a backup needs the folder free (the sink stopped; it resumes from its
committed offsets); a ClickHouse server is backed up while it runs, into a folder it can
write (``backups.allowed_path`` on the server) at the same path as here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from recovery.errors import BackupError
from sinks.clickhouse import connect
from tickcast.config import Settings
from tickcast.errors import DependencyError

FOLDER = "clickhouse"
_CONFIG = "<clickhouse><backups><allowed_path>{path}</allowed_path></backups></clickhouse>\n"


def _client(settings: Settings, backup_folder: Path) -> Client:
    """A client allowed to BACKUP to / RESTORE from ``backup_folder``."""
    dsn = settings.clickhouse
    if urlparse(dsn).scheme != "chdb":
        return connect(settings)
    config = Path(tempfile.mkdtemp(prefix="tickcast-ch-")) / "backups.xml"
    config.write_text(_CONFIG.format(path=f"{backup_folder.resolve().parent}/"))
    try:
        return clickhouse_connect.get_client(dsn=dsn, chdb_options={"config-file": str(config)})
    except Exception as exc:
        raise DependencyError(
            "clickhouse",
            f"cannot open {dsn}: {str(exc).splitlines()[0][:300]}",
            "embedded chDB is locked by the process using it: stop the sink while backing up",
        ) from None


def _target(folder: Path) -> str:
    return f"File('{folder.resolve()}')"


def backup_clickhouse(settings: Settings, root: Path) -> dict[str, Any]:
    """``BACKUP DATABASE`` into ``root/clickhouse``; the rows of every table, for the record."""
    folder = root / FOLDER
    database = settings.clickhouse_database
    client = _client(settings, folder)
    try:
        tables = client.query(
            "SELECT name, total_rows FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
        if not tables:
            raise BackupError(f"clickhouse: database {database!r} has no tables to back up")
        status = client.query(f"BACKUP DATABASE {database} TO {_target(folder)}").result_rows
    except BackupError:
        raise
    except Exception as exc:
        raise DependencyError("clickhouse", f"BACKUP failed: {exc}".splitlines()[0]) from None
    finally:
        client.close()
    if not status or status[0][1] != "BACKUP_CREATED":
        raise BackupError(f"clickhouse: BACKUP did not complete: {status}")
    return {"database": database, "rows": {str(n): int(r or 0) for n, r in tables}}


def clickhouse_problems(settings: Settings, root: Path) -> list[str]:
    """Why ClickHouse is not an empty restore target (a table with rows), if it is not."""
    try:
        client = _client(settings, root / FOLDER)
        full = client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND total_rows > 0 "
            "AND name != 'schema_migrations'",
            parameters={"db": settings.clickhouse_database},
        ).result_rows
        client.close()
    except Exception as exc:
        return [f"clickhouse: {str(exc).splitlines()[0][:300]}"]
    if full:
        names = ", ".join(row[0] for row in full)
        return [f"clickhouse: tables of {settings.clickhouse_database!r} hold rows ({names})"]
    return []


def restore_clickhouse(settings: Settings, root: Path, source_database: str) -> dict[str, Any]:
    """``RESTORE DATABASE`` from ``root/clickhouse`` as this deployment's database.

    An existing database is dropped first: :func:`clickhouse_problems` has checked that its
    tables are empty (``tickcast up`` creates them empty).
    """
    folder = root / FOLDER
    database = settings.clickhouse_database
    client = _client(settings, folder)
    try:
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        status = client.query(
            f"RESTORE DATABASE {source_database} AS {database} FROM {_target(folder)}"
        ).result_rows
        rows = client.query(
            "SELECT name, total_rows FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    except Exception as exc:
        raise DependencyError("clickhouse", f"RESTORE failed: {exc}".splitlines()[0]) from None
    finally:
        client.close()
    if not status or status[0][1] != "RESTORED":
        raise BackupError(f"clickhouse: RESTORE did not complete: {status}")
    return {"database": database, "rows": {str(n): int(r or 0) for n, r in rows}}
