"""``tickcast worker``: the stream worker's entry (validation, features, scoring, outcomes)."""

from __future__ import annotations

from typing import Annotated

import typer

from tickcast.command import settings
from tickcast.processes import hold_sigterm_while_starting


def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = 9101,
    runner: Annotated[
        str, typer.Option(help="direct (a plain batch consumer group) or faust (a Faust agent).")
    ] = "direct",
) -> None:
    """Run a stream worker (validation, features, scoring, outcomes) until interrupted."""
    if runner not in {"faust", "direct"}:
        raise typer.BadParameter("--runner must be faust or direct")
    hold_sigterm_while_starting()
    from agents.worker import run_worker

    run_worker(settings(service=True, traced_as="worker"), metrics_port=metrics_port, runner=runner)
