"""``tickcast learner``: run the online learner, inspect and seed its checkpoints, promote.

The lead mounts this sub-app: ``app.add_typer(online_learning.cli.app, name="learner")``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from tickcast.config import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _settings() -> Settings:
    import os

    from tickcast.logging import configure_logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    loaded = load_settings()
    configure_logging(loaded.log_level, json=loaded.log_json)
    return loaded


@app.command()
def run(
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics here.")] = None,
    checkpoint_every: Annotated[float, typer.Option(help="Seconds between checkpoints.")] = 60.0,
    min_samples: Annotated[int, typer.Option(help="Pairs before a test is run.")] = 500,
    alpha: Annotated[float, typer.Option(help="Significance level of a promotion.")] = 0.05,
    min_effect: Annotated[float, typer.Option(help="Smallest effect size promoted.")] = 0.02,
    cooldown_s: Annotated[float, typer.Option(help="Event-time pause after a change.")] = 3600.0,
    test: Annotated[str, typer.Option(help="dm, welch or both.")] = "dm",
    horizon: Annotated[int, typer.Option(help="Horizon (bars) learned and tested.")] = 1,
    promote: Annotated[
        bool, typer.Option(help="On a win, register an online learner and move the alias.")
    ] = True,
) -> None:
    """Run the learner worker on the outcomes topic until SIGTERM/SIGINT."""
    from faust.worker import Worker

    from online_learning.challengers import default_challengers
    from online_learning.learner_process import build_learner_app
    from online_learning.promotion import PromotionPolicy, registry_promoter
    from tickcast.errors import DependencyError
    from tickcast.metrics import get_metrics, serve_metrics

    if test not in ("dm", "welch", "both"):
        raise typer.BadParameter("test must be dm, welch or both")
    settings = _settings()
    chosen: Literal["dm", "welch", "both"] = test  # type: ignore[assignment]
    policy = PromotionPolicy(min_samples, alpha, min_effect, cooldown_s, chosen, horizon)
    promoter = None
    if promote:
        try:
            promoter = registry_promoter(settings)
        except DependencyError as exc:
            typer.echo(f"promotion disabled: {exc}", err=True)
    if metrics_port is not None:
        serve_metrics(metrics_port, addr=settings.metrics_host)
    app_, _ = build_learner_app(
        settings, get_metrics(), policy=policy, promoter=promoter,
        challengers=default_challengers(horizon=horizon), checkpoint_interval_s=checkpoint_every,
        register_online=promoter is not None,
    )  # fmt: skip
    Worker(app_, loglevel="warn", quiet=True, redirect_stdouts=False).execute_from_commandline()


@app.command()
def status() -> None:
    """Print the newest checkpoint: run id and each challenger's version."""
    from online_learning.checkpoint import restore_checkpoint

    checkpoint = restore_checkpoint(_settings())
    if checkpoint is None:
        typer.echo("no checkpoint yet (run `tickcast learner init` or `tickcast learner run`)")
        raise typer.Exit(1)
    info = {"run_id": checkpoint.run_id, "challengers": [c.info() for c in checkpoint.challengers]}
    typer.echo(json.dumps(info, indent=2, default=str))


@app.command()
def init(
    horizon: Annotated[int, typer.Option(help="Horizon (bars) of the challengers.")] = 1,
    force: Annotated[bool, typer.Option(help="Write even when a checkpoint exists.")] = False,
) -> None:
    """Save fresh challengers as a first checkpoint (the scorer then has something to load)."""
    from online_learning.challengers import default_challengers
    from online_learning.checkpoint import latest_checkpoint_id, save_checkpoint

    settings = _settings()
    existing = latest_checkpoint_id(settings)
    if existing and not force:
        typer.echo(f"checkpoint {existing} exists; use --force to write a fresh one")
        raise typer.Exit(1)
    typer.echo(save_checkpoint(settings, default_challengers(horizon=horizon)))


@app.command("promote")
def promote_cmd(
    name: Annotated[str, typer.Argument(help="Registered model name, or an online learner's.")],
    version: Annotated[str, typer.Argument(help="Version to make champion (or online-N).")],
    reason: Annotated[str, typer.Option(help="Why, in a sentence.")],
    actor: Annotated[str, typer.Option(help="Who decides.")],
    into: Annotated[
        str | None,
        typer.Option(help="Registered model an online learner joins (default: by horizon)."),
    ] = None,
) -> None:
    """Promote a version by hand: move the alias and publish a PROMOTED model-event.

    ``NAME online-N`` promotes an online learner: the one of that name in the newest
    checkpoint is frozen and registered as a new version of ``--into`` (default
    ``tickcast-direction-h<horizon>``), which becomes the champion (the API's
    ``POST /v1/models/promote`` does the same through :func:`checkpoint_registrar`).
    """
    from online_learning.frozen import checkpoint_registrar
    from online_learning.promotion import (
        ChampionChallengerTest,
        PromotionController,
        PromotionError,
        PromotionPolicy,
        is_online,
        registry_promoter,
    )
    from streams.codec import get_codec
    from streams.producer import BatchProducer

    settings = _settings()
    producer = BatchProducer(settings)
    codec = get_codec("ModelEvent")
    controller = PromotionController(
        ChampionChallengerTest(PromotionPolicy()),
        registry_promoter(settings),
        lambda event: producer.produce(
            settings.topic("model-events"), str(event["model_name"]).encode(), codec.encode(event)
        ),
    )
    try:
        if is_online(version):
            controller.register = checkpoint_registrar(settings, target=into)
        event = controller.promote_by_hand(actor, version, reason, name=name)
    except PromotionError as exc:
        typer.echo(f"refused ({exc.reason}): {exc}", err=True)
        raise typer.Exit(1) from None
    producer.flush()
    typer.echo(json.dumps(event, default=str))
