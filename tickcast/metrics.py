"""Every Prometheus metric of tickcast, defined once.

The catalogue (:data:`SPECS`) names each metric, its kind, labels, unit (in the name) and
buckets. :class:`Metrics` builds all of them on one :class:`~prometheus_client.CollectorRegistry`
(a fresh one per instance, so tests never share state) and offers small hooks — timers and
recorders — so components update metrics from lifecycle hooks, not from business logic.
:func:`get_metrics` returns the process-wide instance, created lazily on first call.

Latency histograms are in **milliseconds** (:data:`LATENCY_BUCKETS_MS`); the one exception is
``prediction_duration_seconds``, a name kept from the original design.

>>> m = Metrics()
>>> with m.stage_timer("features"):
...     pass
>>> m.value("tickcast_stage_latency_ms_count", stage="features")
1.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    make_asgi_app,
    start_http_server,
)

Kind = Literal["counter", "gauge", "histogram"]
Group = Literal["system", "model", "business", "kafka"]

#: Bucket upper bounds of every latency histogram, in milliseconds.
LATENCY_BUCKETS_MS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500)
#: Buckets of ``prediction_duration_seconds`` (the same bounds, in seconds).
DURATION_BUCKETS_S: tuple[float, ...] = tuple(b / 1000 for b in LATENCY_BUCKETS_MS)
#: Buckets of ``prediction_confidence`` (a probability of the predicted class).
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1)

#: Stages of the stream whose latency ``tickcast_stage_latency_ms`` measures.
STAGES: tuple[str, ...] = ("tick", "features", "prediction", "sink")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of the catalogue; ``name`` is the exposed name (counters end in ``_total``)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    group: Group = "system"
    buckets: tuple[float, ...] | None = None

    def series(self) -> tuple[str, ...]:
        """The sample names Prometheus stores for this metric."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _h(name: str, doc: str, labels: tuple[str, ...], group: Group = "system") -> MetricSpec:
    return MetricSpec(name, "histogram", doc, labels, group, LATENCY_BUCKETS_MS)


# --- system ---------------------------------------------------------------------------------
STAGE_LATENCY = _h("tickcast_stage_latency_ms", "Time spent per stream stage (ms).", ("stage",))
EVENTS = MetricSpec(
    "tickcast_events_total", "counter", "Records consumed (in) or produced (out) per topic.",
    ("topic", "direction"),
)  # fmt: skip
DEAD_LETTERS = MetricSpec(
    "tickcast_dead_letters_total", "counter", "Records sent to a dead-letter topic, by reason.",
    ("topic", "reason"),
)  # fmt: skip
SIDE_RECORDS = MetricSpec(
    "tickcast_side_records_total", "counter",
    "Side-stream records (macro, news, sector-returns) the worker took, by outcome: applied, "
    "late (applied from then on, never retroactively), ignored (no feature uses it), refused "
    "(bad record), not_final (sector rows answered while an idle partition was left out).",
    ("topic", "outcome"),
)  # fmt: skip
SIDE_SECTOR_HELD = MetricSpec(
    "tickcast_side_sector_held_records", "gauge",
    "Ticks the direct runner holds in memory until their sector columns are final "
    "(TICKCAST_SIDE_SECTOR_SYNC; never committed, bounded by TICKCAST_SIDE_SECTOR_BUFFER per "
    "partition).", (),
)  # fmt: skip
WORKER_TURN = _h(
    "tickcast_worker_turn_ms", "Time per phase of the direct worker's loop turn (ms).", ("phase",)
)
REDIS_OP = _h("tickcast_redis_op_ms", "Redis operation latency (ms).", ("op",))
REDIS_ERRORS = MetricSpec("tickcast_redis_errors_total", "counter", "Failed Redis ops.", ("op",))
CLICKHOUSE_OP = _h(
    "tickcast_clickhouse_op_ms", "ClickHouse operation latency (ms).", ("op", "table")
)
CLICKHOUSE_ERRORS = MetricSpec(
    "tickcast_clickhouse_errors_total", "counter", "Failed ClickHouse ops.", ("op", "table")
)
HTTP_REQUEST = _h(
    "tickcast_http_request_ms", "HTTP request latency (ms).", ("route", "method", "status")
)
FEATURE_CACHE_HIT_RATE = MetricSpec(
    "feature_cache_hit_rate", "gauge", "Share of feature look-ups served from the cache (0-1)."
)
DEPENDENCY_UP = MetricSpec(
    "tickcast_dependency_up", "gauge", "1 when a dependency (kafka, redis, clickhouse, mlflow) "
    "answers, else 0.", ("component",),
)  # fmt: skip
DEGRADED = MetricSpec(
    "tickcast_degraded", "gauge",
    "1 while a dependency of this process is down and it waits (consumption paused), else 0.",
)  # fmt: skip
PREDICTION_AGE = MetricSpec(
    "tickcast_prediction_age_seconds", "gauge",
    "Age of the oldest latest-prediction across symbols (wall clock minus its write time).",
)  # fmt: skip
LAST_PREDICTION = MetricSpec(
    "tickcast_last_prediction_timestamp_seconds", "gauge",
    "Unix time at which the last prediction was written.", ("model",),
)  # fmt: skip

# --- model ----------------------------------------------------------------------------------
PREDICTIONS = MetricSpec(
    "tickcast_predictions_total", "counter", "Predictions made, by model, version and role.",
    ("model", "version", "role"), "model",
)  # fmt: skip
MODEL_ACCURACY = MetricSpec(
    "model_accuracy", "gauge", "Rolling directional accuracy of a model version (0-1).",
    ("model_version",), "model",
)  # fmt: skip
MODEL_LOG_LOSS = MetricSpec(
    "tickcast_model_log_loss", "gauge", "Rolling log loss of a model version.",
    ("model", "version"), "model",
)  # fmt: skip
PREDICTION_CONFIDENCE = MetricSpec(
    "prediction_confidence", "histogram", "Probability of the predicted class.", ("model",),
    "model", CONFIDENCE_BUCKETS,
)  # fmt: skip
DATA_DRIFT_PSI = MetricSpec(
    "data_drift_psi", "gauge", "Population stability index of a feature vs. its reference.",
    ("feature",), "model",
)  # fmt: skip
DRIFT_REFERENCE_INFO = MetricSpec(
    "tickcast_drift_reference_info", "gauge",
    "1 for the reference drift compares with: source champion (its model and version) or "
    "stream (the stream's first window).", ("source", "model", "version"), "model",
)  # fmt: skip
DRIFT_REFERENCE_SWITCHES = MetricSpec(
    "tickcast_drift_reference_switches_total", "counter",
    "Times drift changed its reference (a new champion, or the first one after the stream "
    "window), by the source switched to.", ("source",), "model",
)  # fmt: skip
DRIFT_REFERENCE_ERRORS = MetricSpec(
    "tickcast_drift_reference_errors_total", "counter",
    "Champion references drift could not use (registry, missing, garbage, empty, "
    "feature_set); it keeps its current reference.", ("reason",), "model",
)  # fmt: skip
DRIFT_LATE = MetricSpec(
    "tickcast_drift_late_records_total", "counter",
    "Feature vectors that reached drift after their event-time window had closed (not in any "
    "window; see TICKCAST_DRIFT_IDLE_PARTITION_S).", (), "model",
)  # fmt: skip
EXPLANATIONS = MetricSpec(
    "tickcast_explanations_total", "counter",
    "Champion predictions with their top-k contributions (explained) and without them "
    "(over_budget: TICKCAST_EXPLAIN_BUDGET spent, or the explanation failed).", ("outcome",),
    "model",
)  # fmt: skip
PREDICTION_DURATION = MetricSpec(
    "prediction_duration_seconds", "histogram", "Time to score one micro-batch (seconds).",
    ("model",), "model", DURATION_BUCKETS_S,
)  # fmt: skip
FEATURE_IMPORTANCE = MetricSpec(
    "tickcast_feature_importance", "gauge", "Feature importance (gain share) of a model.",
    ("model", "feature"), "model",
)  # fmt: skip
MODEL_INFO = MetricSpec(
    "tickcast_model_info", "gauge", "1 for each model version serving, labelled with its role.",
    ("model", "version", "role"), "model",
)  # fmt: skip
AB_REQUESTS = MetricSpec(
    "tickcast_ab_requests_total", "counter", "HTTP requests per A/B arm.", ("experiment", "arm"),
    "model",
)  # fmt: skip
PROMOTION_DECISIONS = MetricSpec(
    "tickcast_promotion_decisions_total", "counter",
    "Champion/challenger decisions (promote, keep, insufficient).", ("model", "decision"), "model",
)  # fmt: skip
MODEL_REFUSALS = MetricSpec(
    "tickcast_model_refusals_total", "counter",
    "Model sets the worker refused to score (another feature set, a column the stream lacks).",
    ("model",), "model",
)  # fmt: skip

# --- business -------------------------------------------------------------------------------
SHARPE = MetricSpec(
    "portfolio_sharpe_ratio", "gauge", "Annualised Sharpe ratio of a model's strategy.",
    ("model",), "business",
)  # fmt: skip
MAX_DRAWDOWN = MetricSpec(
    "portfolio_max_drawdown", "gauge", "Maximum drawdown of a model's strategy (0-1).",
    ("model",), "business",
)  # fmt: skip
DAILY_PNL = MetricSpec(
    "daily_pnl_usd", "gauge", "P&L of the current trading day (USD).", ("model",), "business"
)

# --- kafka ----------------------------------------------------------------------------------
_GTP = ("group", "topic", "partition")
KAFKA_LAG = MetricSpec(
    "kafka_consumergroup_lag", "gauge", "Log-end offset minus committed offset.", _GTP, "kafka"
)
KAFKA_COMMITTED = MetricSpec(
    "kafka_consumergroup_committed_offset", "gauge", "Committed offset of a group.", _GTP, "kafka"
)
KAFKA_END = MetricSpec(
    "kafka_topic_partition_end_offset", "gauge", "Log-end (high watermark) offset.",
    ("topic", "partition"), "kafka",
)  # fmt: skip
LAG_COLLECT_ERRORS = MetricSpec(
    "tickcast_lag_collect_errors_total", "counter", "Failed lag collections.", (), "kafka"
)

#: The whole catalogue, in documentation order.
SPECS: tuple[MetricSpec, ...] = (
    STAGE_LATENCY, WORKER_TURN, EVENTS, DEAD_LETTERS, SIDE_RECORDS, SIDE_SECTOR_HELD,
    REDIS_OP, REDIS_ERRORS, CLICKHOUSE_OP,
    CLICKHOUSE_ERRORS, HTTP_REQUEST, FEATURE_CACHE_HIT_RATE, DEPENDENCY_UP, DEGRADED,
    PREDICTION_AGE, LAST_PREDICTION,
    PREDICTIONS, MODEL_ACCURACY, MODEL_LOG_LOSS, PREDICTION_CONFIDENCE, DATA_DRIFT_PSI,
    DRIFT_REFERENCE_INFO, DRIFT_REFERENCE_SWITCHES, DRIFT_REFERENCE_ERRORS, DRIFT_LATE,
    EXPLANATIONS, PREDICTION_DURATION, FEATURE_IMPORTANCE, MODEL_INFO, AB_REQUESTS,
    PROMOTION_DECISIONS, MODEL_REFUSALS,
    SHARPE, MAX_DRAWDOWN, DAILY_PNL,
    KAFKA_LAG, KAFKA_COMMITTED, KAFKA_END, LAG_COLLECT_ERRORS,
)  # fmt: skip

#: Series every process exposes through the process collector (CPU, memory, fds).
PROCESS_SERIES: frozenset[str] = frozenset(
    {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    }
)
#: Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES: frozenset[str] = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
    }
)


def known_series() -> frozenset[str]:
    """Every series name a PromQL expression of ours may use (catalogue, process, Prometheus)."""
    own = {s for spec in SPECS for s in spec.series()}
    return frozenset(own) | PROCESS_SERIES | PROMETHEUS_SERIES


def spec(name: str) -> MetricSpec:
    """The catalogue entry called ``name`` (``KeyError`` if none)."""
    for entry in SPECS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def _counter(entry: MetricSpec, registry: CollectorRegistry) -> Counter:
    assert entry.kind == "counter", entry.name
    return Counter(entry.name, entry.help, entry.labels, registry=registry)


def _gauge(entry: MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert entry.kind == "gauge", entry.name
    return Gauge(entry.name, entry.help, entry.labels, registry=registry)


def _histogram(entry: MetricSpec, registry: CollectorRegistry) -> Histogram:
    assert entry.kind == "histogram", entry.name
    assert entry.buckets is not None, entry.name
    return Histogram(entry.name, entry.help, entry.labels, registry=registry, buckets=entry.buckets)


class Metrics:
    """All tickcast metrics on one registry, with hooks to update them.

    ``Metrics()`` builds a fresh :class:`CollectorRegistry` (with the process collector unless
    ``process=False``); pass a registry to share one. Attributes are the prometheus_client
    objects (``metrics.events.labels(topic="ticks", direction="in").inc()``).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
        r = self.registry
        self.stage_latency_ms = _histogram(STAGE_LATENCY, r)
        self.worker_turn_ms = _histogram(WORKER_TURN, r)
        self.events = _counter(EVENTS, r)
        self.dead_letters = _counter(DEAD_LETTERS, r)
        self.side_records = _counter(SIDE_RECORDS, r)
        self.side_sector_held = _gauge(SIDE_SECTOR_HELD, r)
        self.redis_op_ms = _histogram(REDIS_OP, r)
        self.redis_errors = _counter(REDIS_ERRORS, r)
        self.clickhouse_op_ms = _histogram(CLICKHOUSE_OP, r)
        self.clickhouse_errors = _counter(CLICKHOUSE_ERRORS, r)
        self.http_request_ms = _histogram(HTTP_REQUEST, r)
        self.feature_cache_hit_rate = _gauge(FEATURE_CACHE_HIT_RATE, r)
        self.dependency_up = _gauge(DEPENDENCY_UP, r)
        self.degraded = _gauge(DEGRADED, r)
        self.prediction_age_seconds = _gauge(PREDICTION_AGE, r)
        self.last_prediction_ts = _gauge(LAST_PREDICTION, r)
        self.predictions = _counter(PREDICTIONS, r)
        self.model_accuracy = _gauge(MODEL_ACCURACY, r)
        self.model_log_loss = _gauge(MODEL_LOG_LOSS, r)
        self.prediction_confidence = _histogram(PREDICTION_CONFIDENCE, r)
        self.data_drift_psi = _gauge(DATA_DRIFT_PSI, r)
        self.drift_reference_info = _gauge(DRIFT_REFERENCE_INFO, r)
        self.drift_reference_switches = _counter(DRIFT_REFERENCE_SWITCHES, r)
        self.drift_reference_errors = _counter(DRIFT_REFERENCE_ERRORS, r)
        self.drift_late = _counter(DRIFT_LATE, r)
        self.explanations = _counter(EXPLANATIONS, r)
        self.prediction_duration_seconds = _histogram(PREDICTION_DURATION, r)
        self.feature_importance = _gauge(FEATURE_IMPORTANCE, r)
        self.model_info = _gauge(MODEL_INFO, r)
        self.model_refusals = _counter(MODEL_REFUSALS, r)
        self.ab_requests = _counter(AB_REQUESTS, r)
        self.promotion_decisions = _counter(PROMOTION_DECISIONS, r)
        self.portfolio_sharpe_ratio = _gauge(SHARPE, r)
        self.portfolio_max_drawdown = _gauge(MAX_DRAWDOWN, r)
        self.daily_pnl_usd = _gauge(DAILY_PNL, r)
        self.kafka_lag = _gauge(KAFKA_LAG, r)
        self.kafka_committed_offset = _gauge(KAFKA_COMMITTED, r)
        self.kafka_end_offset = _gauge(KAFKA_END, r)
        self.lag_collect_errors = _counter(LAG_COLLECT_ERRORS, r)

    # --- hooks ------------------------------------------------------------------------------
    @contextmanager
    def stage_timer(self, stage: str) -> Iterator[None]:
        """Observe the time spent inside the block as ``stage`` latency (ms)."""
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.stage_latency_ms.labels(stage=stage).observe(_elapsed_ms(start))

    @contextmanager
    def redis_op(self, op: str) -> Iterator[None]:
        """Time a Redis operation (ms); count it as an error if the block raises."""
        start = time.perf_counter_ns()
        try:
            yield
        except BaseException:
            self.redis_errors.labels(op=op).inc()
            raise
        finally:
            self.redis_op_ms.labels(op=op).observe(_elapsed_ms(start))

    @contextmanager
    def clickhouse_op(self, op: str, table: str) -> Iterator[None]:
        """Time a ClickHouse operation (ms); count it as an error if the block raises."""
        start = time.perf_counter_ns()
        try:
            yield
        except BaseException:
            self.clickhouse_errors.labels(op=op, table=table).inc()
            raise
        finally:
            self.clickhouse_op_ms.labels(op=op, table=table).observe(_elapsed_ms(start))

    @contextmanager
    def scoring_timer(self, model: str) -> Iterator[None]:
        """Time scoring of one micro-batch into ``prediction_duration_seconds``."""
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            elapsed_s = (time.perf_counter_ns() - start) / 1e9
            self.prediction_duration_seconds.labels(model=model).observe(elapsed_s)

    def record_events(self, topic: str, direction: Literal["in", "out"], n: int = 1) -> None:
        """Count ``n`` records consumed (``in``) from or produced (``out``) to ``topic``."""
        self.events.labels(topic=topic, direction=direction).inc(n)

    def record_dead_letter(self, topic: str, reason: str, n: int = 1) -> None:
        """Count records of ``topic`` dead-lettered for ``reason``."""
        self.dead_letters.labels(topic=topic, reason=reason).inc(n)

    def observe_http(self, route: str, method: str, status: int, elapsed_ms: float) -> None:
        """Record one HTTP request (route template, not the raw path, to bound cardinality)."""
        self.http_request_ms.labels(route=route, method=method, status=str(status)).observe(
            elapsed_ms
        )

    def record_predictions(
        self,
        model: str,
        version: str,
        role: str,
        confidences: list[float] | tuple[float, ...] = (),
        n: int | None = None,
    ) -> None:
        """Count a batch of predictions and observe their confidences; stamp their time."""
        count = len(confidences) if n is None else n
        self.predictions.labels(model=model, version=version, role=role).inc(count)
        child = self.prediction_confidence.labels(model=model)
        for value in confidences:
            child.observe(value)
        self.last_prediction_ts.labels(model=model).set(time.time())

    def set_dependency(self, component: str, up: bool) -> None:
        """Say whether ``component`` (kafka, redis, clickhouse, mlflow) answers."""
        self.dependency_up.labels(component=component).set(1.0 if up else 0.0)

    def set_drift(self, psi_by_feature: dict[str, float]) -> None:
        """Publish the latest PSI of each feature."""
        for feature, psi in psi_by_feature.items():
            self.data_drift_psi.labels(feature=feature).set(psi)

    def set_drift_reference(self, source: str, model: str, version: str) -> None:
        """Say which reference drift compares with (replacing the previous one)."""
        self.drift_reference_info.clear()
        self.drift_reference_info.labels(source=source, model=model, version=version).set(1)

    def set_feature_importance(self, model: str, importance: dict[str, float]) -> None:
        """Publish the champion's feature importances (replacing the previous model's)."""
        self.set_feature_importances({model: importance})

    def set_feature_importances(self, per_model: dict[str, dict[str, float]]) -> None:
        """Publish each model's champion feature importances (replacing every earlier one)."""
        self.feature_importance.clear()
        for model, importance in per_model.items():
            for feature, value in importance.items():
                self.feature_importance.labels(model=model, feature=feature).set(value)

    def set_portfolio(self, model: str, *, sharpe: float, max_drawdown: float, pnl: float) -> None:
        """Publish a model's business metrics."""
        self.portfolio_sharpe_ratio.labels(model=model).set(sharpe)
        self.portfolio_max_drawdown.labels(model=model).set(max_drawdown)
        self.daily_pnl_usd.labels(model=model).set(pnl)

    # --- reading ----------------------------------------------------------------------------
    def value(self, series: str, **labels: str) -> float | None:
        """The current value of one sample (``None`` if absent); for tests and health checks."""
        return self.registry.get_sample_value(series, labels)


def _elapsed_ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


_default: Metrics | None = None
_default_lock = threading.Lock()


def get_metrics() -> Metrics:
    """The process-wide :class:`Metrics`, created on first call (never at import time)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Metrics()
    return _default


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` HTTP server (a daemon thread); ``close()`` stops it."""

    port: int
    _server: object
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)


def serve_metrics(
    port: int, registry: CollectorRegistry | None = None, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``registry`` (default: :func:`get_metrics`'s) on ``addr:port``; port 0 picks one.

    Loopback unless told otherwise: processes pass ``TICKCAST_METRICS_HOST`` (0.0.0.0 in a pod).
    """
    reg = registry if registry is not None else get_metrics().registry
    server, thread = start_http_server(port, addr=addr, registry=reg)
    return MetricsServer(port=int(server.server_address[1]), _server=server, _thread=thread)


def metrics_asgi_app(registry: CollectorRegistry | None = None) -> object:
    """An ASGI app serving ``registry`` (mount it at ``/metrics`` in FastAPI)."""
    return make_asgi_app(registry if registry is not None else get_metrics().registry)
