"""Build and run a stream worker: the Faust app with the stages this deployment runs."""

from __future__ import annotations

import faust
from faust.worker import Worker

from agents.app import faust_app
from agents.feature_engine import FeatureEngine
from agents.features_agent import FeatureStage, register_feature_agent
from indicators.feature_set import FeatureSet
from monitoring.metrics import Metrics, get_metrics, serve_metrics
from streams.validation import ValidationRules
from tickcast.config import Settings


def build_worker_app(
    settings: Settings, metrics: Metrics | None = None
) -> tuple[faust.App, FeatureStage]:
    """The Faust app with the feature stage registered."""
    app = faust_app(settings)
    engine = FeatureEngine(FeatureSet.default(), ValidationRules())
    stage = register_feature_agent(app, settings, engine, metrics or get_metrics())
    return app, stage


def run_worker(settings: Settings, metrics_port: int | None = None, loglevel: str = "warn") -> None:
    """Run a worker in the foreground until SIGTERM/SIGINT."""
    if metrics_port is not None:
        serve_metrics(metrics_port)
    app, _ = build_worker_app(settings)
    Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()
