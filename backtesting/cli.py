"""``tickcast backtest``: replay a time range or a dataset through the stream, then report.

Mounted by ``tickcast.cli`` as a callback-style sub-app::

    tickcast backtest --from 2010-01-04 --to 2010-06-30 --source topic \\
        --model tickcast-direction-h1 --version 3 --version 4 \\
        --strategy sign --strategy threshold:0.55:0.45 --strategy topk:10
    tickcast backtest --source sp500-daily --symbols 50 --keep
    tickcast backtest --source bars.parquet --config backtest.yaml --run-id bt-my-test

Dates are UTC; a date-only ``--to`` includes that whole day. See docs/backtesting.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from backtesting.config import (
    BacktestConfig,
    SignStrategy,
    StrategySpec,
    ThresholdStrategy,
    TopBottomKStrategy,
)
from backtesting.runner import BacktestOutcome, BacktestRequest, run_backtest
from tickcast.errors import ConfigError

app = typer.Typer(add_completion=False, invoke_without_command=True, help=__doc__)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_MS = 86_400_000
#: Metric shown in the summary table -> its column header.
SUMMARY_METRICS = {
    "total_return": "total", "annualized_return": "ann.", "sharpe": "sharpe",
    "max_drawdown": "max DD", "turnover": "turn", "ic_mean": "IC", "accuracy": "acc",
}  # fmt: skip


def parse_time(text: str, *, end: bool = False) -> int:
    """Epoch ms (UTC) of ``--from``/``--to``; a date-only ``end`` is the day's last ms.

    >>> parse_time("2010-01-04"), parse_time("2010-01-04", end=True)
    (1262563200000, 1262649599999)
    >>> parse_time("2010-01-04T20:00:00+00:00")
    1262635200000
    """
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read {text!r} as a date or time: {exc}") from None
    if stamp is pd.NaT:
        raise ConfigError(f"cannot read {text!r} as a date or time")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    ms = int(stamp.value // 1_000_000)
    return ms + _DAY_MS - 1 if end and _DATE_ONLY.match(text.strip()) else ms


def _prob(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"strategy threshold {what} {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"strategy threshold {what} {value} is outside [0, 1]")
    return value


def parse_strategy(text: str) -> StrategySpec:
    """``sign``, ``sign:long``, ``threshold[:p_hi[:p_lo]]``, ``topk[:k[:long]]``.

    >>> parse_strategy("threshold:0.6:0.4").label, parse_strategy("topk:10").label
    ('threshold_0.6_0.4', 'top10_bottom10')
    >>> parse_strategy("threshold:0.6").p_lo
    0.4
    """
    kind, *args = [part.strip() for part in text.strip().split(":")]
    kind = kind.lower()
    long_only = bool(args) and args[-1].lower() in {"long", "long_only"}
    if long_only:
        args = args[:-1]
    try:
        if kind == "sign" and not args:
            return SignStrategy(long_only=long_only)
        if kind == "long_on_sign" and not args:
            return SignStrategy(long_only=True)
        if kind == "threshold" and not long_only and len(args) <= 2:
            hi = _prob(args[0], "p_hi") if args else 0.55
            lo = _prob(args[1], "p_lo") if len(args) > 1 else round(1.0 - hi, 10)
            return ThresholdStrategy(p_hi=hi, p_lo=lo)
        if kind in {"topk", "top_bottom_k"} and len(args) <= 1:
            k = int(args[0]) if args else 5
            return TopBottomKStrategy(k=k, long_only=long_only)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"strategy {text!r}: {exc}") from None
    raise ConfigError(
        f"strategy {text!r}: use sign, sign:long, threshold:P_HI:P_LO or topk:K[:long]"
    )


def build_request(
    *,
    source: str,
    from_: str | None,
    to: str | None,
    model: str | None,
    versions: list[str] | None,
    strategies: list[str] | None,
    config: str | None,
    run_id: str | None,
    keep: bool,
    symbols: int | None,
    timeout_s: float,
    mlflow: bool,
) -> BacktestRequest:
    """The request the command line describes (pure: no I/O besides reading ``config``)."""
    cfg = BacktestConfig.from_file(config) if config else BacktestConfig()
    if strategies:
        specs = [parse_strategy(s) for s in strategies]
        data = cfg.model_dump()
        data["strategies"] = [s.model_dump() for s in specs]
        cfg = BacktestConfig.from_mapping(data)
    if versions and not model:
        raise ConfigError("--version needs --model")
    from_ms = parse_time(from_) if from_ else None
    to_ms = parse_time(to, end=True) if to else None
    if from_ms is not None and to_ms is not None and from_ms > to_ms:
        raise ConfigError(f"--from {from_} is after --to {to}")
    return BacktestRequest(
        source=source,
        from_ms=from_ms,
        to_ms=to_ms,
        model=model,
        versions=tuple(dict.fromkeys(versions or [])),
        config=cfg,
        run_id=run_id,
        keep=keep,
        symbols=symbols,
        timeout_s=timeout_s,
        log_mlflow=mlflow,
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.3g}"
    return str(value)


def summary_table(outcome: BacktestOutcome) -> Table:
    """One row per run of the report with the figures people look at first."""
    table = Table(title=f"backtest {outcome.run_id}")
    table.add_column("run", no_wrap=True)
    for header in SUMMARY_METRICS.values():
        table.add_column(header, justify="right", no_wrap=True)
    if outcome.report is not None:
        frame = outcome.report.table()
        for key, row in frame.iterrows():
            table.add_row(str(key), *[_fmt(row.get(m, float("nan"))) for m in SUMMARY_METRICS])
    t = outcome.timings
    table.caption = (
        f"{outcome.ticks:,} ticks in {t.get('process_s', 0):.1f} s "
        f"({outcome.ticks_per_s:,.0f} ticks/s), {len(outcome.predictions):,} predictions; "
        f"wall {t.get('wall_s', 0):.1f} s"
    )
    return table


def print_outcome(outcome: BacktestOutcome, console: Console) -> None:
    """The summary table, the note, and where the files are."""
    console.print(summary_table(outcome))
    if outcome.note:
        console.print(f"[yellow]note:[/] {outcome.note}")
    for what, path in outcome.files.items():
        console.print(f"  {what:<12} {path}")
    for model, run in outcome.mlflow_runs.items():
        console.print(f"  mlflow       {model}: run {run}")


@app.callback()
def backtest(
    from_: Annotated[
        str | None, typer.Option("--from", help="First event time (UTC date or ISO time).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Last event time; a date includes its whole day.")
    ] = None,
    source: Annotated[
        str, typer.Option(help="'topic' (production ticks), a dataset name, or a CSV/Parquet file.")
    ] = "topic",
    model: Annotated[str | None, typer.Option(help="Registered model to score.")] = None,
    version: Annotated[
        list[str] | None, typer.Option(help="Model version (repeat: side by side).")
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option(help="sign | sign:long | threshold:0.55:0.45 | topk:10 (repeatable)."),
    ] = None,
    config: Annotated[str | None, typer.Option(help="Backtest YAML/JSON configuration.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Reuse (resume) this run id.")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the run's topics and keys.")] = False,
    symbols: Annotated[
        int | None, typer.Option(min=1, help="Dataset sources: only the first N symbols.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Longest wait for the worker, seconds.")] = 1800.0,
    mlflow: Annotated[bool, typer.Option(help="Log evaluated model versions to MLflow.")] = True,
) -> None:
    """Replay ticks into an isolated namespace through the real worker, evaluate, report."""
    from tickcast.config import load_settings
    from tickcast.logging import configure_logging

    request = build_request(
        source=source, from_=from_, to=to, model=model, versions=version, strategies=strategy,
        config=config, run_id=run_id, keep=keep, symbols=symbols, timeout_s=timeout,
        mlflow=mlflow,
    )  # fmt: skip
    settings = load_settings()
    configure_logging("WARNING", json=False)
    console = Console()
    print_outcome(run_backtest(settings, request, console), console)
