"""Build and run a stream worker: the feature stage with the stages this deployment runs.

Two runners drive the same stage and commit rule: ``direct`` (the default, a plain
confluent-kafka consumer group, agents.direct_runner) and ``faust`` (a Faust agent,
agents.features_agent). A Faust app is built only when the Faust runner runs.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from agents.direct_runner import run_direct
from agents.feature_engine import FeatureEngine
from agents.feature_stage import FeatureStage
from agents.predictions import PredictionStage
from agents.side_inputs import SideFeatureEngine, SideInputs
from agents.stages import BatchStage
from indicators.feature_set import FeatureSet
from sidestreams.features import spec_from_settings
from streams.validation import ValidationRules
from tickcast.config import Settings
from tickcast.metrics import Metrics, get_metrics, serve_metrics

if TYPE_CHECKING:
    import faust

RUNNERS = ("direct", "faust")


def build_stage(settings: Settings, metrics: Metrics | None = None) -> FeatureStage:
    """The feature stage with scoring + outcomes (unless disabled); not yet opened."""
    metrics = metrics or get_metrics()
    rules = ValidationRules.from_settings(settings)
    engine = FeatureEngine(FeatureSet.default(), rules)
    side = None
    if settings.side_features:  # macro, news and sector columns (agents.side_inputs)
        inputs = SideInputs(settings, spec_from_settings(settings), metrics)
        engine = side = SideFeatureEngine(FeatureSet.default(), inputs, rules)
    stages: list[BatchStage] = []
    if settings.scoring_enabled:
        stages.append(PredictionStage(settings, metrics, engine.feature_set))
    stage = FeatureStage(settings, engine, metrics, stages)
    if side is not None:
        side.owned = stage.owned
    return stage


def build_worker_app(
    settings: Settings, metrics: Metrics | None = None
) -> tuple[faust.App, FeatureStage]:
    """The Faust app running the feature stage (the ``faust`` runner)."""
    from agents.features_agent import register_feature_agent
    from streams.faust_app import faust_app

    app = faust_app(settings)
    return app, register_feature_agent(app, build_stage(settings, metrics))


def run_worker(
    settings: Settings,
    metrics_port: int | None = None,
    loglevel: str = "warn",
    runner: str = "direct",
) -> None:
    """Run a worker in the foreground until SIGTERM/SIGINT (runner ``direct`` or ``faust``)."""
    if metrics_port is not None:
        serve_metrics(metrics_port, addr=settings.metrics_host)
    if runner == "direct":
        run_direct_worker(settings)
        return
    from faust.worker import Worker

    app, _ = build_worker_app(settings)
    Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()


def run_direct_worker(settings: Settings, metrics: Metrics | None = None) -> None:
    """The stage on a plain batch consumer group (agents.direct_runner), until a signal."""
    stage = build_stage(settings, metrics)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_direct(settings, stage, stop)

    asyncio.run(main())
