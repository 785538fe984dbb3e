"""Development commands: the local stack (``up``, ``down``, ``status``, ``doctor``), ``demo``,
``replay`` of sample data or a user's file into the ticks topic, and the ``data`` sets."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tickcast.command import settings
from tickcast.health import Health

data_app = typer.Typer(no_args_is_help=True, help="Market data sets: obtain, cache, describe.")
console = Console(stderr=False)
err = Console(stderr=True)


def _health_table(rows: list[Health], title: str) -> Table:
    table = Table(title=title)
    for column in ("component", "state", "detail", "seconds"):
        table.add_column(column)
    for row in rows:
        state = "[green]up[/]" if row.ok else "[red]DOWN[/]"
        detail = row.detail if row.ok else f"{row.detail}\n[yellow]fix:[/] {row.hint}"
        table.add_row(row.component, state, detail, f"{row.seconds:.2f}")
    return table


def up() -> None:
    """Start Kafka, Redis, ClickHouse (chDB) and MLflow locally and apply the topics."""
    import time

    from devtools.stack import local
    from streams.topics import apply_topics

    cfg = settings()
    began = time.perf_counter()
    rows = local.up(
        cfg, on_done=lambda h: console.print(f"  {h.component:<10} up in {h.seconds:.2f} s")
    )
    changed = apply_topics(cfg)
    console.print(_health_table(rows, "tickcast local stack"))
    console.print(f"topics: {len(changed)} created or changed")
    console.print(f"stack up in {time.perf_counter() - began:.2f} s")


def down() -> None:
    """Stop the Kafka broker and Redis server the project started, and the demo's API and sink."""
    from devtools.stack import local

    for name, stopped in local.down(settings()).items():
        console.print(f"  {name:<10} {'stopped' if stopped else 'was not running'}")


def status() -> None:
    """Each component's health (exit code 1 when one is down)."""
    from devtools.stack import local

    rows = local.status(settings())
    console.print(_health_table(rows, "tickcast status"))
    raise typer.Exit(0 if all(r.ok for r in rows) else 1)


def doctor() -> None:
    """Check every prerequisite and component, say what is wrong and how to fix it."""
    from devtools.stack import local

    cfg = settings()
    rows = local.prerequisites() + local.status(cfg)
    console.print(_health_table(rows, "tickcast doctor"))
    broken = [r for r in rows if not r.ok]
    for row in broken:
        err.print(f"[red]✗ {row.component}[/]: {row.detail} — {row.hint}")
    if not broken:
        console.print("[green]everything answers[/]")
    raise typer.Exit(1 if broken else 0)


def demo(
    symbols: Annotated[
        int, typer.Option(help="The first N symbols (0 = all 524 of the data set).")
    ] = 100,
) -> None:
    """The main job on the embedded defaults: real data through the whole pipeline."""
    from devtools.demo import run_demo

    run_demo(settings(), console, symbols=symbols or None)


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

    from devtools.feeds import load_feed
    from streams.replay import publish

    cfg = settings(traced_as="replay")
    frame = load_feed(dataset, symbols=symbols, limit=limit, bar_seconds=bars, kind=kind)
    with Progress(console=err) as progress:
        task = progress.add_task(f"replay {dataset}", total=len(frame))
        sent = publish(cfg, frame, f"replay:{dataset}", speed, lambda n: progress.advance(task, n))
    console.print(f"published {sent} ticks to {cfg.topic('ticks')}")


@data_app.command("list")
def data_list() -> None:
    """The built-in real data sets."""
    from devtools import datasets

    for name in datasets.DATASETS:
        console.print(name)


@data_app.command("obtain")
def data_obtain(name: Annotated[str, typer.Argument(help="sp500-daily or es-trades")]) -> None:
    """Download (once) and cache a data set; prints where it is."""
    from devtools import datasets

    settings()
    console.print(str(datasets.obtain(name)))


@data_app.command("describe")
def data_describe(name: Annotated[str, typer.Argument(help="sp500-daily or es-trades")]) -> None:
    """Rows, symbols, time range, units and licence of a data set."""
    from devtools import datasets

    settings()
    for key, value in datasets.describe(name).items():
        console.print(f"[bold]{key}[/]: {value}")
