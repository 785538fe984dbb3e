"""Build and run a stream worker: the Faust app with the stages this deployment runs."""

from __future__ import annotations

import asyncio
import signal

import faust
from faust.worker import Worker

from agents.app import faust_app
from agents.direct_runner import run_direct
from agents.feature_engine import FeatureEngine
from agents.features_agent import FeatureStage, register_feature_agent
from agents.predictions import PredictionStage
from agents.stages import BatchStage
from indicators.feature_set import FeatureSet
from monitoring.metrics import Metrics, get_metrics, serve_metrics
from streams.validation import ValidationRules
from tickcast.config import Settings


def build_worker_app(
    settings: Settings, metrics: Metrics | None = None
) -> tuple[faust.App, FeatureStage]:
    """The Faust app with the feature stage (and, unless disabled, scoring + outcomes)."""
    app = faust_app(settings)
    metrics = metrics or get_metrics()
    engine = FeatureEngine(FeatureSet.default(), ValidationRules())
    stages: list[BatchStage] = []
    if settings.scoring_enabled:
        stages.append(PredictionStage(settings, metrics, engine.feature_set))
    stage = register_feature_agent(app, settings, engine, metrics, stages)
    return app, stage


def run_worker(
    settings: Settings,
    metrics_port: int | None = None,
    loglevel: str = "warn",
    runner: str = "faust",
) -> None:
    """Run a worker in the foreground until SIGTERM/SIGINT (runner ``faust`` or ``direct``)."""
    if metrics_port is not None:
        serve_metrics(metrics_port)
    if runner == "direct":
        run_direct_worker(settings)
        return
    app, _ = build_worker_app(settings)
    Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()


def run_direct_worker(settings: Settings, metrics: Metrics | None = None) -> None:
    """The same stages on a plain batch consumer (agents.direct_runner), until a signal."""
    _, stage = build_worker_app(settings, metrics)  # the Faust app only declares; never starts

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_direct(settings, stage, stop)

    asyncio.run(main())
