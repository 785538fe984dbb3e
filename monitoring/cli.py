"""Command-line entry points of monitoring: ``tickcast lag``, ``tickcast metrics-summary`` and
the drift process (``tickcast drift``; ``tickcast sink drift`` is its former name).

Mount them on the top-level app (tickcast/cli.py)::

    from monitoring.cli import lag_app, metrics_summary
    app.add_typer(lag_app, name="lag")
    app.command("metrics-summary")(metrics_summary)

A broker that does not answer raises :class:`~tickcast.errors.DependencyError`, which the
top-level ``main`` prints as one line (exit code 2); ``--serve`` never exits on broker errors
(the exporter reports ``tickcast_dependency_up{component="kafka"} 0`` and retries).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

import typer
from rich.console import Console

from tickcast.command import settings
from tickcast.config import Settings

#: Default refresh of ``--watch`` and of ``--serve`` (seconds).
WATCH_INTERVAL_S = 2.0
SERVE_INTERVAL_S = 15.0
#: Where monitoring.lag sends librdkafka's log lines.
RDKAFKA_LOGGER = "monitoring.lag.rdkafka"

lag_app = typer.Typer(
    help="Consumer lag (log-end − committed offset) per group, topic and partition.",
    invoke_without_command=True,
    add_completion=False,
)


def _settings(service: bool) -> Settings:
    """Settings, with JSON logs for a long-running exporter and quiet console logs otherwise."""
    loaded = settings(service)
    if not service:
        # librdkafka's reconnect chatter would bury the one-line broker error a person needs
        logging.getLogger(RDKAFKA_LOGGER).setLevel(logging.CRITICAL)
    return loaded


@lag_app.callback(invoke_without_command=True)
def lag(
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    serve: Annotated[
        int | None,
        typer.Option("--serve", metavar="PORT", help="Serve the lag as Prometheus metrics."),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Consumer group (repeatable; default: every group)."),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help=f"Refresh seconds (default {WATCH_INTERVAL_S:g} watch, "
            f"{SERVE_INTERVAL_S:g} serve).",
        ),
    ] = None,
    addr: Annotated[
        str | None, typer.Option(help="Bind address of --serve (default TICKCAST_METRICS_HOST).")
    ] = None,
) -> None:
    """Show consumer lag once, refresh it (--watch) or export it to Prometheus (--serve)."""
    from monitoring import lag as lagmod

    if watch and serve is not None:
        raise typer.BadParameter("choose one of --watch and --serve", param_hint="--watch")
    cfg = _settings(service=serve is not None)
    groups = list(group) if group else None
    console = Console()
    if serve is not None:
        addr = addr or cfg.metrics_host
        every = interval or SERVE_INTERVAL_S
        console.print(
            f"lag exporter: http://{addr}:{serve}/metrics, every {every:g} s, "
            f"groups {groups or 'all'} at {cfg.kafka_bootstrap} (Ctrl-C stops)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            lagmod.run_lag_exporter(
                cfg.kafka_bootstrap, groups, port=serve, addr=addr, interval_s=every
            )
        return
    if watch:
        with contextlib.suppress(KeyboardInterrupt):
            every = interval or WATCH_INTERVAL_S
            lagmod.watch_lag(cfg.kafka_bootstrap, groups, interval_s=every, console=console)
        return
    rows = lagmod.print_lag(cfg.kafka_bootstrap, groups, console=console)
    if groups and not rows:
        console.print(f"no committed offsets for {', '.join(groups)}")


def metrics_summary(
    url: Annotated[
        str, typer.Option(help="A process's /metrics page (the worker's --metrics-port).")
    ] = "http://127.0.0.1:9101/metrics",
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """One screen of throughput, dead letters, stage latency p50/p99 and consumer lag."""
    from monitoring.summary import fetch_metrics, print_summary, summary

    cfg = _settings(service=False)
    if as_json:
        import orjson  # NaN and infinities become null, keeping the output valid JSON

        data = summary(cfg, fetch_metrics(url))
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    print_summary(cfg, url, console=Console())


def drift(
    emit_partial: Annotated[
        bool, typer.Option(help="Publish the open windows when stopped.")
    ] = True,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics (and the liveness probe) here.")
    ] = None,
) -> None:
    """Compute PSI/KS drift of every feature per event-time window until interrupted."""
    import signal
    import threading

    from monitoring.drift_process import DriftAgent
    from tickcast.metrics import serve_metrics

    cfg = _settings(service=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if metrics_port is not None:
        serve_metrics(metrics_port, addr=cfg.metrics_host)
    DriftAgent(cfg).run(stop, emit_partial=emit_partial)
