"""The ``tickcast`` command line: the local stack, topics, and the product's jobs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tickcast.config import Settings, load_settings
from tickcast.errors import TickcastError
from tickcast.stack.health import Health

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics from infra/kafka/topics.yaml.")
app.add_typer(topics_app, name="topics")
data_app = typer.Typer(no_args_is_help=True, help="Market data sets: obtain, cache, describe.")
app.add_typer(data_app, name="data")
console = Console(stderr=False)
err = Console(stderr=True)


def settings(service: bool = False) -> Settings:
    """Settings for a command; services log JSON at the configured level, people see warnings."""
    from tickcast.logging import configure_logging

    loaded = load_settings()
    if service:
        configure_logging(loaded.log_level, json=loaded.log_json)
    else:
        import logging
        import os

        level = "WARNING" if loaded.log_level.upper() == "INFO" else loaded.log_level
        configure_logging(level, json=False)
        # MLflow's progress bars and INFO lines are noise on a person's terminal.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        logging.getLogger("mlflow").setLevel(logging.ERROR)
    return loaded


def _health_table(rows: list[Health], title: str) -> Table:
    table = Table(title=title)
    for column in ("component", "state", "detail", "seconds"):
        table.add_column(column)
    for row in rows:
        state = "[green]up[/]" if row.ok else "[red]DOWN[/]"
        detail = row.detail if row.ok else f"{row.detail}\n[yellow]fix:[/] {row.hint}"
        table.add_row(row.component, state, detail, f"{row.seconds:.2f}")
    return table


@app.command()
def up() -> None:
    """Start Kafka, Redis, ClickHouse (chDB) and MLflow locally and apply the topics."""
    import time

    from streams.topics import apply_topics
    from tickcast.stack import local

    cfg = settings()
    began = time.perf_counter()
    rows = local.up(
        cfg, on_done=lambda h: console.print(f"  {h.component:<10} up in {h.seconds:.2f} s")
    )
    changed = apply_topics(cfg)
    console.print(_health_table(rows, "tickcast local stack"))
    console.print(f"topics: {len(changed)} created or changed")
    console.print(f"stack up in {time.perf_counter() - began:.2f} s")


@app.command()
def down() -> None:
    """Stop the Kafka broker and Redis server the project started, and the demo's API and sink."""
    from tickcast.stack import local

    for name, stopped in local.down(settings()).items():
        console.print(f"  {name:<10} {'stopped' if stopped else 'was not running'}")


@app.command()
def status() -> None:
    """Each component's health (exit code 1 when one is down)."""
    from tickcast.stack import local

    rows = local.status(settings())
    console.print(_health_table(rows, "tickcast status"))
    raise typer.Exit(0 if all(r.ok for r in rows) else 1)


@app.command()
def doctor() -> None:
    """Check every prerequisite and component, say what is wrong and how to fix it."""
    from tickcast.stack import local

    cfg = settings()
    rows = local.prerequisites() + local.status(cfg)
    console.print(_health_table(rows, "tickcast doctor"))
    broken = [r for r in rows if not r.ok]
    for row in broken:
        err.print(f"[red]✗ {row.component}[/]: {row.detail} — {row.hint}")
    if not broken:
        console.print("[green]everything answers[/]")
    raise typer.Exit(1 if broken else 0)


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics and align their configs (idempotent)."""
    from streams.topics import apply_topics

    changed = apply_topics(settings())
    for line in changed:
        console.print(f"  {line}")
    console.print(f"{len(changed)} topic(s) created or changed")


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = 9101,
    runner: Annotated[
        str, typer.Option(help="direct (a plain batch consumer group) or faust (a Faust agent).")
    ] = "direct",
) -> None:
    """Run a stream worker (validation, features, scoring, outcomes) until interrupted."""
    from agents.worker import run_worker

    if runner not in {"faust", "direct"}:
        raise typer.BadParameter("--runner must be faust or direct")
    run_worker(settings(service=True), metrics_port=metrics_port, runner=runner)


@app.command()
def demo(
    symbols: Annotated[
        int, typer.Option(help="The first N symbols (0 = all 524 of the data set).")
    ] = 100,
) -> None:
    """The main job on the embedded defaults: real data through the whole pipeline."""
    from tickcast.demo import run_demo

    run_demo(settings(), console, symbols=symbols or None)


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


@app.command()
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

    from indicators.feature_set import FeatureSet
    from sinks.feature_blob import decode

    cfg = settings()
    prefix = f"{namespace}:" if namespace else cfg.redis_key_prefix
    if symbol == "rebuild":
        _rebuild_view(cfg.redis_url, prefix)
        return
    payload = redis.Redis.from_url(cfg.redis_url).get(f"{prefix}features:{symbol}")
    if not isinstance(payload, bytes):
        err.print(f"no features for {symbol!r} under '{prefix}' (is the worker running?)")
        raise typer.Exit(1)
    blob = decode(payload)
    fs = FeatureSet.default()
    if blob.feature_set_version != fs.version:
        err.print(f"feature set {blob.feature_set_version} is not this build's {fs.version}")
        raise typer.Exit(1)
    table = Table(
        title=f"{symbol} @ event time {blob.event_ts_ms} (set {blob.feature_set_version})"
    )
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in zip(fs.names, blob.values, strict=True):
        table.add_row(name, "warming up" if value != value else f"{value:.6g}")
    console.print(table)


@app.command()
def replay(
    dataset: Annotated[
        str, typer.Argument(help="sp500-daily, es-trades, synthetic, or a CSV/Parquet path.")
    ],
    speed: Annotated[
        float | None, typer.Option(help="N× real time in event time; default as fast as possible.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Publish at most this many rows.")] = None,
    symbols: Annotated[int | None, typer.Option(help="Only the first N symbols.")] = None,
    bars: Annotated[
        float | None, typer.Option(help="Build time bars of this many seconds from trades.")
    ] = None,
    kind: Annotated[str, typer.Option(help="A user file's rows: bars or trades.")] = "bars",
) -> None:
    """Publish market data to the ticks topic in event-time order, with a progress bar."""
    from rich.progress import Progress

    from streams.feeds import load_feed
    from streams.replay import publish

    cfg = settings()
    frame = load_feed(dataset, symbols=symbols, limit=limit, bar_seconds=bars, kind=kind)
    with Progress(console=err) as progress:
        task = progress.add_task(f"replay {dataset}", total=len(frame))
        sent = publish(cfg, frame, f"replay:{dataset}", speed, lambda n: progress.advance(task, n))
    console.print(f"published {sent} ticks to {cfg.topic('ticks')}")


@data_app.command("list")
def data_list() -> None:
    """The built-in real data sets."""
    from streams import datasets

    for name in datasets.DATASETS:
        console.print(name)


@data_app.command("obtain")
def data_obtain(name: Annotated[str, typer.Argument(help="sp500-daily or es-trades")]) -> None:
    """Download (once) and cache a data set; prints where it is."""
    from streams import datasets

    settings()
    console.print(str(datasets.obtain(name)))


@data_app.command("describe")
def data_describe(name: Annotated[str, typer.Argument(help="sp500-daily or es-trades")]) -> None:
    """Rows, symbols, time range, units and licence of a data set."""
    from streams import datasets

    settings()
    for key, value in datasets.describe(name).items():
        console.print(f"[bold]{key}[/]: {value}")


@app.command("config")
def show_config() -> None:
    """Every setting: its environment variable, current value and meaning (secrets hidden)."""
    from pydantic import SecretStr

    from tickcast.redaction import MASK, redact

    cfg = settings()
    table = Table(title="tickcast settings (TICKCAST_* environment variables, .env)")
    for column in ("variable", "value", "meaning"):
        table.add_column(column)
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        secret = isinstance(value, SecretStr) or name.endswith(("_secret", "_token", "_password"))
        # a secret is shown as set or empty, never in part; passwords inside DSNs are masked
        shown = (MASK if value else "(empty)") if secret else redact(str(value))
        table.add_row(f"TICKCAST_{name.upper()}", shown, field.description or "")
    console.print(table)


def _mount_subcommands() -> None:
    """The product's other jobs, each a typer app in its own package."""
    from backtesting.cli import app as backtest_app
    from monitoring.cli import lag_app, metrics_summary
    from online_learning.cli import app as learner_app
    from serving.cli import app as serve_app
    from serving.cli import token_command, users_app
    from sinks.cli import app as sink_app
    from training.cli import app as train_app

    app.add_typer(train_app, name="train")
    app.add_typer(learner_app, name="learner", help="River challengers and promotion.")
    app.add_typer(sink_app, name="sink")
    app.add_typer(lag_app, name="lag")
    app.add_typer(backtest_app, name="backtest")
    app.add_typer(serve_app, name="serve")
    app.add_typer(users_app, name="users")
    app.command("token")(token_command)
    app.command("metrics-summary")(metrics_summary)


_mount_subcommands()


def watch_lifeline() -> None:
    """Stop this process (SIGTERM: a graceful stop) when the process that started it dies.

    Only for children of :class:`tickcast.stack.processes.ServiceProcess`, which pass the read
    end of a pipe: end-of-file there means the parent is gone, one byte means it detached us.
    """
    import os
    import signal
    import threading

    from tickcast.stack.processes import LIFELINE_ENV

    raw = os.environ.pop(LIFELINE_ENV, None)  # not inherited by our own children
    if raw is None:
        return
    fd = int(raw)
    os.set_inheritable(fd, False)

    def watch() -> None:
        if os.read(fd, 1) == b"":
            os.kill(os.getpid(), signal.SIGTERM)
        os.close(fd)

    threading.Thread(target=watch, name="tickcast-lifeline", daemon=True).start()


def main() -> None:
    """Entry point: typed errors become one line on stderr and exit code 2."""
    watch_lifeline()
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except TickcastError as exc:
        err.print(f"tickcast: {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
