"""The stores' commands: ``tickcast sink`` (the ClickHouse sink process, its migrate step,
history reads) and ``tickcast features`` (a symbol's row of the Redis feature table).

``tickcast/cli.py`` mounts them. ``tickcast sink drift`` (hidden) is the former name of the drift
process, whose home is ``monitoring/`` (``tickcast drift``).
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from tickcast.command import settings
from tickcast.config import Settings

app = typer.Typer(no_args_is_help=True, help="ClickHouse history: sink, migrations, drift.")
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return settings()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command("run")
def run(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics (and the liveness probe) here.")
    ] = None,
) -> None:
    """Consume the sink topics into ClickHouse until interrupted (serves chDB reads too)."""
    from sinks.sink_process import run_sink
    from tickcast.metrics import serve_metrics

    cfg = settings(traced_as="sink")
    if metrics_port is not None:
        serve_metrics(metrics_port, addr=cfg.metrics_host)
    run_sink(cfg, _stop_on_signals())


@app.command("migrate")
def migrate() -> None:
    """Apply the table migrations and align every table's TTL with the retention settings."""
    from sinks.clickhouse import connect
    from sinks.tables import prepare_tables

    cfg = _settings()
    report = prepare_tables(connect(cfg), cfg)
    console.print(f"migrations applied: {report['migrations'] or 'none'}")
    console.print(f"retention changed: {report['retention'] or 'none'}")


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


def _rebuild_view(url: str, prefix: str) -> None:
    import asyncio

    from sinks.redis_table import RedisTable

    async def drop() -> int:
        table = RedisTable.from_url(url, prefix, 1)
        try:
            return await table.drop_view_marks()
        finally:
            await table.close()

    dropped = asyncio.run(drop())
    console.print(
        f"{dropped} partition mark(s) dropped under '{prefix}': running workers rewrite their "
        "symbols from state within a checkpoint interval"
    )


def features(
    symbol: Annotated[
        str, typer.Argument(help="Symbol, e.g. AAPL; or `rebuild`: workers rewrite Redis.")
    ],
    namespace: Annotated[
        str | None, typer.Option(help="Read a namespace's keys, e.g. demo (default: none).")
    ] = None,
) -> None:
    """Print a symbol's latest feature vector from Redis, by feature name.

    ``tickcast features rebuild`` deletes the namespace's view marks: within a checkpoint
    interval each running worker rewrites its symbols' features and predictions from its
    state (what it also does by itself when Redis comes back empty).
    """
    import redis
    from rich.table import Table

    from sidestreams.feature_sets import names_for_version
    from sinks.feature_blob import decode
    from sinks.redis_keys import feature_key

    cfg = _settings()
    prefix = f"{namespace}:" if namespace else cfg.redis_key_prefix
    if symbol == "rebuild":
        _rebuild_view(cfg.redis_url, prefix)
        return
    payload = redis.Redis.from_url(cfg.redis_url).get(feature_key(prefix, symbol))
    if not isinstance(payload, bytes):
        err.print(f"no features for {symbol!r} under '{prefix}' (is the worker running?)")
        raise typer.Exit(1)
    blob = decode(payload)
    names = names_for_version(blob.feature_set_version, cfg)  # any named set, +side ones too
    if names is None or len(names) != len(blob.values):
        err.print(
            f"feature set {blob.feature_set_version} is none of this build's named sets "
            "under these TICKCAST_SIDE_* settings (tickcast featuresets lists them)"
        )
        raise typer.Exit(1)
    table = Table(
        title=f"{symbol} @ event time {blob.event_ts_ms} (set {blob.feature_set_version})"
    )
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in zip(names, blob.values, strict=True):
        table.add_row(name, "warming up" if value != value else f"{value:.6g}")
    console.print(table)
