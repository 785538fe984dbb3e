"""Build and run a stream worker: the feature stage with the stages this deployment runs.

Two runners drive the same stage and commit rule: ``direct`` (the default, a plain
confluent-kafka consumer group, agents.direct_runner) and ``faust`` (a Faust agent,
agents.features_agent). A Faust app is built only when the Faust runner runs.

**The feature set is chosen once, at start** (:func:`choose_feature_set`, in
training.feature_choice so that the drift process follows the same choice):
``TICKCAST_FEATURE_SET`` when set, else the union (:func:`indicators.feature_sets.union_of`)
of the named sets of the registered champions and challengers of ``TICKCAST_MODEL_NAME``,
else ``classic``. The stream never changes its width mid-run: a model promoted later whose
set the stream's does not contain is refused (``model_set_refused``,
``tickcast_model_refusals_total``) and the previous models keep scoring until the worker is
restarted, when the union includes the new set. A model of a contained set (``classic`` on
a ``classic+alpha158`` stream) reads its own columns by name (agents.scoring).
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import structlog

from agents.direct_runner import run_direct
from agents.feature_engine import FeatureEngine
from agents.feature_stage import FeatureStage
from agents.predictions import PredictionStage
from agents.side_inputs import SideFeatureEngine, SideInputs
from agents.stages import BatchStage
from indicators.feature_set import FeatureSet
from indicators.feature_sets import contained, feature_set
from sidestreams.feature_sets import configured, split
from sidestreams.features import SideFeatureSet, SideSpec, spec_from_settings
from streams.validation import ValidationRules
from tickcast.config import Settings
from tickcast.errors import ConfigError
from tickcast.metrics import Metrics, get_metrics, serve_metrics
from tickcast.processes import stop_requested
from training.feature_choice import choose_feature_set

if TYPE_CHECKING:
    import faust

RUNNERS = ("direct", "faust")

log = structlog.get_logger(__name__)


def compatible_versions(name: str, side: SideSpec | None = None) -> frozenset[str]:
    """Versions whose models score on a stream computing ``name`` (with ``side`` columns)."""
    sets = [feature_set(n) for n in contained(name)]
    versions = {fs.version for fs in sets}
    if side is not None:
        versions |= {SideFeatureSet(fs, side).version for fs in sets}
    return frozenset(versions)


def build_stage(settings: Settings, metrics: Metrics | None = None) -> FeatureStage:
    """The feature stage with scoring + outcomes (unless disabled); not yet opened."""
    metrics = metrics or get_metrics()
    rules = ValidationRules.from_settings(settings)
    name, why = choose_feature_set(settings)
    name = configured(settings, name)  # NAME+side: with the side columns
    base_name, with_side = split(name)
    base: FeatureSet = feature_set(base_name)
    engine = FeatureEngine(base, rules)
    side, spec = None, None
    if with_side:  # macro, news and sector columns (agents.side_inputs)
        spec = spec_from_settings(settings)
        inputs = SideInputs(settings, spec, metrics)
        engine = side = SideFeatureEngine(base, inputs, rules)
    if settings.alpha158_engine == "vector":
        engine.vectorise_alpha158()
    if settings.classic_engine == "vector":
        engine.vectorise_classic()
    log.info("feature_set", name=name, why=why, version=engine.version,
             columns=len(engine.feature_set.names))  # fmt: skip
    stages: list[BatchStage] = []
    if settings.scoring_enabled:
        ok = compatible_versions(base_name, spec)
        stages.append(PredictionStage(settings, metrics, engine.feature_set, compatible=ok))
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

    stage = build_stage(settings, metrics)
    if isinstance(stage.engine, SideFeatureEngine) and stage.engine.side_inputs.sync is not None:
        # rows wait for other partitions' watermarks: the Faust stream hands over a batch only
        # when new ticks arrive and cannot keep held ones (docs/side_streams.md)
        raise ConfigError(
            "the faust runner cannot run the broadcast sector board: use the direct runner, "
            "or TICKCAST_SIDE_SECTOR_SYNC=false (sector columns exact on one partition only)"
        )
    app = faust_app(settings)
    return app, register_feature_agent(app, stage)


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

    class StartedWorker(Worker):
        """Faust's worker, honouring a SIGTERM that came while the app was being built."""

        def install_signal_handlers(self) -> None:
            super().install_signal_handlers()
            if stop_requested():
                self._schedule_shutdown(signal.SIGTERM)

    app, _ = build_worker_app(settings)
    worker = StartedWorker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def run_direct_worker(settings: Settings, metrics: Metrics | None = None) -> None:
    """The stage on a plain batch consumer group (agents.direct_runner), until a signal."""
    stage = build_stage(settings, metrics)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if stop_requested():  # stopped while the stage was being built
            return
        await run_direct(settings, stage, stop)

    asyncio.run(main())
