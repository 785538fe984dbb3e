"""``tickcast backup --to DIR [--components …]`` and ``tickcast restore --from DIR``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tickcast.command import settings


def backup(
    to: Annotated[Path, typer.Option("--to", help="New directory to write the backup into.")],
    components: Annotated[
        str | None,
        typer.Option(help="Comma-separated subset of kafka,clickhouse,redis,mlflow (default all)."),
    ] = None,
) -> None:
    """Back up Kafka (topics, offsets, state), ClickHouse, Redis and MLflow into a directory."""
    from recovery.backup import parse_components, run_backup

    manifest = run_backup(settings(), to, parse_components(components))
    typer.echo(
        json.dumps(
            {
                "backup": str(to),
                "created_at": manifest.created_at,
                "components": {n: e.info for n, e in manifest.components.items()},
            }
        )
    )


def restore(
    from_: Annotated[Path, typer.Option("--from", help="Directory of a backup.")],
) -> None:
    """Restore a backup into an empty stack (refused, changing nothing, when it is not)."""
    from recovery.restore import run_restore

    typer.echo(json.dumps({"restored": str(from_), "components": run_restore(settings(), from_)}))
