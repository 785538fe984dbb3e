"""``tickcast sink``: the ClickHouse sink, its migrate step, the drift agent, history reads.

The lead mounts it with ``app.add_typer(sinks.cli.app, name="sink")``.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from tickcast.config import Settings

app = typer.Typer(no_args_is_help=True, help="ClickHouse history: sink, migrations, drift.")
console = Console()


def _settings() -> Settings:
    from tickcast.cli import settings

    return settings()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command("run")
def run() -> None:
    """Consume the sink topics into ClickHouse until interrupted (serves chDB reads too)."""
    from agents.sink_agent import run_sink

    run_sink(_settings(), _stop_on_signals())


@app.command("migrate")
def migrate() -> None:
    """Apply the table migrations and align every table's TTL with the retention settings."""
    from sinks.clickhouse import connect
    from sinks.tables import prepare_tables

    cfg = _settings()
    report = prepare_tables(connect(cfg), cfg)
    console.print(f"migrations applied: {report['migrations'] or 'none'}")
    console.print(f"retention changed: {report['retention'] or 'none'}")


@app.command("drift")
def drift(
    emit_partial: Annotated[
        bool, typer.Option(help="Publish the open windows when stopped.")
    ] = True,
) -> None:
    """Compute PSI/KS drift of every feature per event-time window until interrupted."""
    from agents.drift_agent import DriftAgent

    DriftAgent(_settings()).run(_stop_on_signals(), emit_partial=emit_partial)


@app.command("accuracy")
def accuracy(
    start_ms: Annotated[int, typer.Option(help="Inclusive start, ms since the epoch.")] = 0,
    end_ms: Annotated[int, typer.Option(help="Exclusive end, ms since the epoch.")] = 2**62,
    run_id: Annotated[str, typer.Option(help="Backtest run id; '' is live.")] = "",
    direct: Annotated[
        bool, typer.Option(help="Open embedded chDB directly (only when no sink runs).")
    ] = False,
) -> None:
    """Accuracy by model and day (through the sink's read endpoint for embedded chDB)."""
    from sinks.history import accuracy_by_model_day, open_reader

    cfg = _settings()
    client = open_reader(cfg, direct=direct)
    rows = accuracy_by_model_day(client, cfg.clickhouse_database, start_ms, end_ms, run_id=run_id)
    for row in rows:
        console.print(json.dumps(row, default=str))
