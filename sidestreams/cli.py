"""``tickcast side``: publish macro series and news headlines to their topics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tickcast.command import settings

app = typer.Typer(no_args_is_help=True, help="Side streams: macro series and news headlines.")
console = Console()


@app.command("publish")
def publish(
    macrodata: Annotated[
        list[str], typer.Option(help="statsmodels macrodata series (repeatable).")
    ] = [],  # noqa: B006
    fred_json: Annotated[
        Path | None, typer.Option(help="FRED API observations JSON (realtime_start = publication).")
    ] = None,
    fred_csv: Annotated[
        Path | None, typer.Option(help="FRED CSV download (published by the lag rule).")
    ] = None,
    series: Annotated[str, typer.Option(help="Series id of --fred-json / --fred-csv.")] = "",
    frequency: Annotated[str, typer.Option(help="D, M, Q or A (--fred-csv).")] = "Q",
    lag_days: Annotated[int, typer.Option(help="Days after the period's end (lag rule).")] = 30,
    news: Annotated[Path | None, typer.Option(help="News headlines, JSON lines.")] = None,
) -> None:
    """Read the given sources and publish their records (rejected rows are listed)."""
    from sidestreams.publish import publish_side
    from sidestreams.sources import FredCsv, FredObservations, MacroData, NewsFile, SideSource

    if (fred_json or fred_csv) and not series:
        raise typer.BadParameter("--series is required with --fred-json / --fred-csv")
    if frequency not in ("D", "M", "Q", "A"):
        raise typer.BadParameter("--frequency takes D, M, Q or A")
    sources: list[SideSource] = []
    if macrodata:
        sources.append(MacroData(series=tuple(macrodata), lag_days=lag_days))
    if fred_json:
        sources.append(FredObservations(fred_json, series))
    if fred_csv:
        sources.append(FredCsv(fred_csv, series, frequency, lag_days))  # type: ignore[arg-type]
    if news:
        sources.append(NewsFile(news))
    if not sources:
        raise typer.BadParameter("give at least one source")
    records = []
    for source in sources:
        loaded = source.load()
        records += loaded.records
        for reason in loaded.rejected:
            console.print(f"[yellow]rejected[/] {reason}")
    sent = publish_side(settings(), records)
    console.print(f"published {sent['macro']} macro and {sent['news']} news record(s)")


def featuresets() -> None:
    """List the feature sets a model can be trained on and a worker can compute (each also
    with the side columns of TICKCAST_SIDE_*: NAME+side)."""
    from rich.table import Table

    from sidestreams.feature_sets import describe

    table = Table("name", "features", "version", "warm-up (bars)")
    for row in describe(settings()):
        table.add_row(str(row["name"]), str(row["count"]), str(row["version"]), str(row["warmup"]))
    console.print(table)
