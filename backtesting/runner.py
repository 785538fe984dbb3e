"""Run one backtest: source → the real stream worker in an isolated namespace → report.

A run has an id (``bt-<UTC yyyymmddThhmmssZ>-<6 hex>`` unless given) that names its whole
namespace (:func:`run_settings`): topics ``<run_id>.*``, consumer group / Faust app
``<run_id>``, Redis keys ``<run_id>:*``, ClickHouse rows ``run_id=<run_id>``
(``sink_run_id``), Faust data ``<data_dir>/faust/<run_id>``. Nothing of another namespace
is read-write: the production ``ticks`` topic is only *read* (by a consumer that commits
nothing), and cleanup (:func:`backtesting.namespace.reset_namespace`) deletes only the
run's own topics, groups and keys.

Steps of :func:`run_backtest`:

1. fresh namespace (or resume: ``<data_dir>/backtests/<run_id>/source.json`` marks a
   completed load, and then the ticks are not loaded again);
2. start the same worker process as production (``tickcast worker``) with the models under
   test pinned through Settings, then load the source into ``<run_id>.ticks``;
3. wait until the run's group has committed every tick (lag 0), with a progress bar;
4. read ``<run_id>.predictions`` into a frame, :func:`backtesting.evaluate.evaluate` it
   against the bars of the source, write the report to ``<data_dir>/backtests/<run_id>/``,
   log each evaluated model version to MLflow;
5. stop the worker and, unless ``keep``, delete the namespace (the report stays).

Determinism: ticks of a run carry ids derived from the source (not from the run), the
worker computes in event time, so two runs of the same source give the same prediction
records except ``produced_at`` and ``scoring_latency_ms`` (wall-clock fields).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import structlog
from rich.console import Console
from rich.progress import Progress

from backtesting import baselines as bl
from backtesting.config import BacktestConfig, ModelRef
from backtesting.evaluate import BacktestReport, evaluate
from backtesting.replay import (
    CopyResult,
    bars_frame,
    copy_range,
    load_frame,
    source_label,
    watermarks,
)
from streams.consumers import reader
from tickcast.config import Settings
from tickcast.errors import ConfigError, DependencyError

log = structlog.get_logger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,99}$")
#: Prediction fields that are wall-clock, so differ between two runs of the same data.
WALL_CLOCK_FIELDS = ("produced_at", "scoring_latency_ms")
PREDICTION_COLUMNS = (
    "symbol", "ts", "horizon", "prob_up", "expected_return", "model_name", "model_version",
    "role", "feature_set_version", "scoring_latency_ms", "correlation_id", "produced_at",
)  # fmt: skip
#: Settings fields (the scoring stage's) that pin the models a worker scores, when present.
MODEL_NAME_FIELD = "model_name"
MODEL_VERSIONS_FIELDS = ("model_versions", "model_version")
#: A run scores one fixed model set: the registry is read once at worker start (no alias
#: polling mid-run) and the online River shadows, whose checkpoint moves as production
#: learns, are off. Applied only to fields the Settings have.
FROZEN_MODEL_SET: dict[str, Any] = {"model_poll_interval_s": 1e9, "online_shadow_models": ""}


# --------------------------------------------------------------------------- identity


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """A fresh run id, ``bt-<UTC timestamp>-<6 hex>``.

    >>> new_run_id(datetime(2024, 5, 1, 13, 4, 5, tzinfo=UTC), "a1b2c3")
    'bt-20240501T130405Z-a1b2c3'
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"bt-{stamp}-{token or secrets.token_hex(3)}"


def check_run_id(run_id: str, base: Settings) -> str:
    """``run_id`` when it is a legal, non-colliding namespace name; :class:`ConfigError` if not.

    Letters, digits, ``_`` and ``-`` only (``.`` and ``:`` separate prefixes), 3-100 chars,
    and it must not be (or prefix) the base deployment's group, topic or key namespace:
    cleanup deletes ``<run_id>`` and ``<run_id>-*`` groups and topics.
    """
    if not RUN_ID_PATTERN.match(run_id):
        raise ConfigError(
            f"run id {run_id!r}: use 3-100 letters, digits, '_' or '-' (start with a letter "
            "or digit)"
        )
    owned = (run_id, f"{run_id}-", f"{run_id}.", f"{run_id}:")
    taken = {
        "consumer group": base.consumer_group,
        "topic prefix": base.topic_prefix,
        "Redis key prefix": base.redis_key_prefix,
    }
    for what, value in taken.items():
        if value and (value == run_id or value.startswith(owned)):
            raise ConfigError(f"run id {run_id!r} collides with the base {what} {value!r}")
    return run_id


def model_overrides(
    model: str | None, versions: tuple[str, ...], fields: set[str] | None = None
) -> dict[str, Any]:
    """Settings updates that pin the worker's scoring to ``model`` (and ``versions``).

    Only fields that :class:`Settings` has are set (``fields`` defaults to its fields), so a
    worker without a scoring stage simply runs features-only. The model set is frozen for
    the run (:data:`FROZEN_MODEL_SET`). Without ``model`` the deployment's models score.

    >>> model_overrides("m", ("7", "8"), {"model_name", "model_versions"})
    {'model_name': 'm', 'model_versions': '7,8'}
    >>> model_overrides("m", ("7",), set())
    {}
    """
    known = set(Settings.model_fields) if fields is None else fields
    out: dict[str, Any] = {k: v for k, v in FROZEN_MODEL_SET.items() if k in known}
    if model and MODEL_NAME_FIELD in known:
        out[MODEL_NAME_FIELD] = model
        target = next((f for f in MODEL_VERSIONS_FIELDS if f in known), None)
        if versions and target is not None:
            out[target] = ",".join(versions)
    return out


def run_settings(
    base: Settings, run_id: str, model: str | None = None, versions: tuple[str, ...] = ()
) -> Settings:
    """The run's isolated namespace on the same stack as ``base``."""
    check_run_id(run_id, base)
    update: dict[str, Any] = {
        "topic_prefix": f"{run_id}.",
        "consumer_group": run_id,
        "redis_key_prefix": f"{run_id}:",
        "sink_run_id": run_id,
        **model_overrides(model, versions),
    }
    return base.model_copy(update=update)


def run_dir(base: Settings, run_id: str) -> Path:
    """Where a run's report, bars, predictions and worker log live."""
    return base.data_dir / "backtests" / run_id


# --------------------------------------------------------------------------- request/outcome


@dataclass(frozen=True)
class BacktestRequest:
    """What to replay, which models to score and how to evaluate them."""

    source: str = "topic"
    from_ms: int | None = None
    to_ms: int | None = None
    model: str | None = None
    versions: tuple[str, ...] = ()
    config: BacktestConfig = field(default_factory=BacktestConfig)
    run_id: str | None = None
    keep: bool = False
    symbols: int | None = None
    timeout_s: float = 1800.0
    log_mlflow: bool = True


@dataclass
class BacktestOutcome:
    """Everything a run produced; the report files are in ``directory``."""

    run_id: str
    directory: Path
    ticks: int
    predictions: pd.DataFrame
    report: BacktestReport | None
    note: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    mlflow_runs: dict[str, str] = field(default_factory=dict)
    copy: CopyResult | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ticks_per_s(self) -> float:
        """Ticks processed per second of the worker phase (start of load → lag 0)."""
        spent = self.timings.get("process_s", 0.0)
        return self.ticks / spent if spent > 0 else 0.0


# --------------------------------------------------------------------------- steps


def load_source(
    ns: Settings, base: Settings, request: BacktestRequest, on_progress: Callable[[int], None]
) -> tuple[pd.DataFrame, CopyResult | None]:
    """Put the source into ``<run_id>.ticks``; the bars it holds and the copy's statistics."""
    from streams.replay import publish

    if request.source == "topic":
        if request.symbols is not None:
            raise ConfigError("--symbols applies to dataset sources, not to --source topic")
        result = copy_range(
            ns,
            base.topic("ticks"),
            ns.topic("ticks"),
            request.from_ms if request.from_ms is not None else 0,
            request.to_ms if request.to_ms is not None else 2**62,
            on_progress,
        )
        return result.bars(), result
    frame = load_frame(request.source, request.from_ms, request.to_ms, request.symbols)
    publish(ns, frame, source_label(request.source), None, on_progress)
    return bars_frame(frame), None


def wait_processed(
    ns: Settings,
    alive: Callable[[], bool],
    timeout_s: float,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Block until the run's group has committed the log end of every ``ticks`` partition.

    Returns the number of ticks processed. ``on_progress(done, total)`` after every look.
    """
    from monitoring.lag import collect_lag

    topic = ns.topic("ticks")
    ends = {p: hi for p, (_, hi) in watermarks(ns, topic).items()}
    total = sum(ends.values())
    deadline = time.monotonic() + timeout_s
    while True:
        rows = collect_lag(ns.kafka_bootstrap, [ns.consumer_group])
        committed = {r.partition: r.committed or 0 for r in rows if r.topic == topic}
        done = sum(min(committed.get(p, 0), end) for p, end in ends.items())
        if on_progress:
            on_progress(done, total)
        if done >= total:
            return total
        if not alive():
            raise DependencyError("worker", "the backtest worker stopped", "see worker.log")
        if time.monotonic() > deadline:
            raise DependencyError("worker", f"{total - done} ticks left after {timeout_s:.0f} s")
        time.sleep(0.25)


def read_predictions(ns: Settings) -> pd.DataFrame:
    """Every record of ``<run_id>.predictions`` (one per key), in a stable order."""
    from confluent_kafka import TopicPartition

    from streams.codec import get_codec

    topic = ns.topic("predictions")
    ends = {p: hi for p, (_, hi) in watermarks(ns, topic).items() if hi > 0}
    records: list[dict[str, Any]] = []
    if ends:
        codec = get_codec("Prediction")
        consumer = reader(ns, f"{ns.consumer_group}-reader")
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        left = dict(ends)
        deadline = time.monotonic() + 120
        try:
            while left and time.monotonic() < deadline:
                for msg in consumer.consume(10_000, timeout=0.5):
                    value, partition, offset = msg.value(), msg.partition(), msg.offset()
                    if msg.error() is not None or value is None or partition is None:
                        continue
                    records.append(codec.decode(value))
                    if offset is not None and offset >= left.get(partition, 0) - 1:
                        left.pop(partition, None)
        finally:
            consumer.close()
    frame = pd.DataFrame(records, columns=list(PREDICTION_COLUMNS))
    keys = ["model_name", "model_version", "symbol", "ts", "horizon"]
    frame = frame.drop_duplicates(keys, keep="last")
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def evaluate_run(
    predictions: pd.DataFrame, bars: pd.DataFrame, request: BacktestRequest
) -> tuple[BacktestReport, str]:
    """The report of the run's predictions; without any, of the benchmark and baselines."""
    cfg = request.config
    if request.model and not cfg.models:
        refs = [ModelRef(name=request.model, version=v) for v in request.versions]
        cfg = cfg.model_copy(update={"models": refs or [ModelRef(name=request.model)]})
    selected = predictions
    if cfg.models and not predictions.empty:
        mask = [
            any(ref.matches(str(n), str(v)) for ref in cfg.models)
            for n, v in zip(predictions["model_name"], predictions["model_version"], strict=True)
        ]
        selected = predictions[mask]
    if not selected.empty:
        return evaluate(predictions, bars, cfg), ""
    wanted = ", ".join(f"{r.name}:{r.version or '*'}" for r in cfg.models) or "any model"
    note = (
        f"no predictions of {wanted}: the worker ran features-only (no scoring stage or no "
        "model loaded); the report shows buy-and-hold and the naive baselines only"
    )
    naive = bl.naive_predictions(bars)
    return evaluate(naive, bars, cfg.model_copy(update={"models": [], "baselines": False})), note


def _resumable(ns: Settings, marker: Path) -> bool:
    if not marker.exists():
        return False
    return sum(hi for _, hi in watermarks(ns, ns.topic("ticks")).values()) > 0


def _write_outputs(
    outcome: BacktestOutcome, bars: pd.DataFrame, request: BacktestRequest, base: Settings
) -> None:
    from backtesting.report import log_to_mlflow, write_backtest_report

    directory = outcome.directory
    outcome.predictions.to_parquet(directory / "predictions.parquet", index=False)
    outcome.files["predictions"] = str(directory / "predictions.parquet")
    if outcome.report is None:
        return
    outcome.report.meta["backtest_run_id"] = outcome.run_id
    outcome.report.meta["source"] = request.source
    if outcome.note:
        outcome.report.meta["note"] = outcome.note
    paths = write_backtest_report(outcome.report, directory, outcome.run_id)
    outcome.files.update(json=str(paths.json), html=str(paths.html))
    if not request.log_mlflow or outcome.note:  # no model version was evaluated
        return
    for run in outcome.report.runs.values():
        key = f"{run.model_name}@{run.model_version}"
        if run.kind != "model" or key in outcome.mlflow_runs:
            continue
        try:
            outcome.mlflow_runs[key] = log_to_mlflow(
                outcome.report, paths, base, run.model_name, run.model_version
            )
        except DependencyError as exc:
            log.warning("backtest.mlflow_failed", model=key, error=str(exc))


def pin_versions(base: Settings, request: BacktestRequest) -> BacktestRequest:
    """``request`` with its versions and aliases resolved to version numbers.

    Done before the run starts, so an unknown version is a clear error (:class:`ModelError`)
    and the worker scores exactly the versions the report names, whatever an alias points
    at by the time the replay ends.
    """
    if not (request.model and request.versions):
        return request
    from training.registry import resolve_versions

    found = resolve_versions(base, request.model, request.versions)
    return replace(request, versions=tuple(str(v) for v in found))


def run_backtest(
    base: Settings, request: BacktestRequest, console: Console | None = None
) -> BacktestOutcome:
    """Run a backtest end to end (see the module docstring); the caller prints the summary."""
    from backtesting.namespace import reset_namespace
    from streams.topics import apply_topics
    from tickcast.processes import ServiceProcess

    run_id = check_run_id(request.run_id or new_run_id(), base)
    request = pin_versions(base, request)
    ns = run_settings(base, run_id, request.model, request.versions)
    directory = run_dir(base, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    marker, bars_path = directory / "source.json", directory / "bars.parquet"
    out = Console(quiet=True) if console is None else console
    timings: dict[str, float] = {}
    began = time.monotonic()
    resume = _resumable(ns, marker)
    if not resume:
        reset_namespace(ns)
        apply_topics(ns)
    timings["setup_s"] = time.monotonic() - began
    # The same stage code as production; the direct runner drives it without Faust's
    # per-event overhead, so a replay runs as fast as the machine allows (docs/stream.md).
    args = ["worker", "--metrics-port", "0", "--runner", "direct"]
    worker = ServiceProcess(ns, args, directory / "worker.log")
    copy: CopyResult | None = None
    succeeded = False
    try:
        started = time.monotonic()
        worker.start()
        with Progress(console=out, transient=console is None) as progress:
            if resume:
                bars = pd.read_parquet(bars_path)
            else:
                load = progress.add_task(f"load {request.source} → {ns.topic('ticks')}")
                bars, copy = load_source(ns, base, request, lambda n: progress.advance(load, n))
                progress.update(load, total=progress.tasks[load].completed)
                bars.to_parquet(bars_path, index=False)
                marker.write_text(json.dumps({"source": request.source, "ticks": len(bars)}))
            timings["load_s"] = time.monotonic() - started
            task = progress.add_task("ticks processed")
            ticks = wait_processed(
                ns,
                worker.running,
                request.timeout_s,
                lambda done, total: progress.update(task, completed=done, total=total),
            )
        timings["process_s"] = time.monotonic() - started
        predictions = read_predictions(ns)
        succeeded = True
    finally:
        worker.stop()
        if succeeded and not request.keep:
            cleaned = time.monotonic()
            reset_namespace(ns)
            timings["cleanup_s"] = time.monotonic() - cleaned
        elif not succeeded:
            log.warning(
                "backtest.failed_namespace_kept", run_id=run_id, resume=f"--run-id {run_id}"
            )
    evaluated = time.monotonic()
    report, note = evaluate_run(predictions, bars, request) if len(bars) else (None, "no ticks")
    outcome = BacktestOutcome(run_id, directory, ticks, predictions, report, note, timings)
    outcome.copy = copy
    _write_outputs(outcome, bars, request, base)
    timings["evaluate_s"] = time.monotonic() - evaluated
    timings["wall_s"] = time.monotonic() - began
    summary = {
        "run_id": run_id,
        "source": request.source,
        "ticks": ticks,
        "predictions": len(predictions),
        "note": note,
        "timings": timings,
        "files": outcome.files,
        "mlflow_runs": outcome.mlflow_runs,
        "kept_namespace": request.keep,
    }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return outcome
