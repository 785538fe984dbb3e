"""Versioned ClickHouse schema migrations, applied idempotently.

Each file ``sinks/migrations/NNNN_name.sql`` holds statements separated by ``;`` with
``{db}`` standing for the database. Applied versions are recorded in
``{db}.schema_migrations``; applying twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Migration:
    """One versioned migration file."""

    version: int
    name: str
    statements: tuple[str, ...]


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in version order; refuses duplicate versions."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        version = int(number)
        if version in found:
            raise ValueError(f"duplicate migration version {version}: {path.name}")
        body = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
        )
        statements = tuple(s.strip() for s in body.split(";") if s.strip())
        found[version] = Migration(version, name, statements)
    return [found[v] for v in sorted(found)]


def migrate(client: Client, database: str) -> list[int]:
    """Apply the migrations not yet applied; returns the versions applied now."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {
        row[0]
        for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
    }
    applied: list[int] = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement.format(db=database))
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        applied.append(migration.version)
    return applied
