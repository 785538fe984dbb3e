"""The drift agent: ``features`` → PSI/KS per feature and event-time window → ``drift``.

One process reads *every* partition of ``features`` (manual assignment; PSI is across all
symbols, so the windows must see all of them) with confluent-kafka, decodes each
FeatureVector (values in ``FeatureSet.default().names`` order), and feeds micro-batches to
:class:`monitoring.drift.DriftMonitor`. The event-time watermark is the smallest of the
partitions' largest event times (partitions with data), so a partition that lags does not
see its records declared late; one that stops receiving data holds windows open until it
resumes or the agent stops (``--emit-partial`` publishes the open windows then). When the
watermark closes a window the agent produces one DriftStat per feature (key: feature) to
``drift`` (the ClickHouse sink stores them in the ``drift`` table) and sets the
``data_drift_psi{feature}`` gauge.

**Reference.** From the registry when ``TICKCAST_DRIFT_REFERENCE_MODEL`` names a model: the
artifact ``reference.json`` (``training/reference.py``'s ``ReferenceDistributions``) of the
run behind its ``champion`` alias (or latest version); see :func:`parse_reference`.
Otherwise (or when that fails) from a reference window of the stream itself: the first
event-time drift window (a reservoir sample of at most ``TICKCAST_DRIFT_REFERENCE_SIZE``
vectors) gives decile bins per feature; records of later
windows are held until the watermark passes that window (at most 10× that size), then
compared against it. The reference is saved to ``<data_dir>/drift/<group>.reference.json``
so a restart keeps the same reference; the first window itself gets no drift record.

**Restart.** Offsets committed (group ``<consumer_group>-drift``) are, per partition, the
first offset still feeding an open window, with ``{"closed_until": ms}`` as commit metadata;
a restart re-reads the open window and drops records of windows already emitted.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from confluent_kafka import TopicPartition

from indicators.feature_set import FeatureSet
from monitoring.drift import DriftMonitor, DriftResult, ReferenceDistribution
from streams.codec import get_codec
from streams.consumers import group_consumer
from streams.producer import BatchProducer
from tickcast.config import Settings
from tickcast.errors import SchemaError
from tickcast.metrics import Metrics, get_metrics

log = structlog.get_logger(__name__)
REFERENCE_ARTIFACT = "reference.json"
STREAM_REFERENCE = ("stream", "reference-window")


def load_registry_reference(
    settings: Settings, model_name: str
) -> tuple[dict[str, ReferenceDistribution], str] | None:
    """The reference stored with a registered model, or ``None`` when unavailable."""
    try:
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_uri)
        try:
            version = client.get_model_version_by_alias(model_name, "champion")
        except Exception:
            version = max(
                client.search_model_versions(f"name = '{model_name}'"), key=lambda v: int(v.version)
            )
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path=REFERENCE_ARTIFACT,
            tracking_uri=settings.mlflow_uri,
        )
        return parse_reference(json.loads(Path(path).read_text())), str(version.version)
    except Exception as exc:  # no MLflow, no model, no artifact: fall back to the stream
        log.warning("no registry reference", model=model_name, error=str(exc)[:300])
        return None


def parse_reference(payload: dict[str, Any]) -> dict[str, ReferenceDistribution]:
    """Per-feature references from ``training/reference.py``'s JSON.

    ``features`` is a list of ``{"name", "edges", "proportions", ...}`` (or a mapping name →
    ``{"edges", "proportions"}``); features without edges (never finite in training) are
    skipped.
    """
    features = payload["features"]
    items = (
        [(f["name"], f) for f in features] if isinstance(features, list) else list(features.items())
    )
    return {
        name: ReferenceDistribution.from_parts(spec["edges"], spec["proportions"])
        for name, spec in items
        if spec.get("edges") and sum(spec.get("proportions") or ()) > 0
    }


class DriftAgent:
    """Consume ``features``, compute drift per window, publish and commit."""

    def __init__(
        self,
        settings: Settings,
        *,
        feature_set: FeatureSet | None = None,
        metrics: Metrics | None = None,
        references: dict[str, ReferenceDistribution] | None = None,
        reference_model: tuple[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.feature_set = feature_set or FeatureSet.default()
        self.names = self.feature_set.names
        self.metrics = metrics or get_metrics()
        self.topic = settings.topic("features")
        self.drift_topic = settings.topic("drift")
        self.codec = get_codec("FeatureVector")
        self.drift_codec = get_codec("DriftStat")
        self.group = f"{settings.consumer_group}-drift"
        self.reference_path = settings.data_dir / "drift" / f"{self.group}.reference.json"
        self.reference_model = reference_model or STREAM_REFERENCE
        self.monitor: DriftMonitor | None = None
        if references is not None:
            self._build_monitor(references)
        self.sample: list[np.ndarray] = []
        self.seen = 0
        self.rng = np.random.default_rng(0)
        self.reference_end: int | None = None
        self.held: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.held_rows = 0
        self.consumer: Any = None
        self.producer: BatchProducer | None = None
        self.positions: dict[int, int] = {}
        self.partition_time: dict[int, int] = {}
        self.skipped = 0
        self.published = 0

    # --- reference --------------------------------------------------------------------------
    def _build_monitor(self, references: dict[str, ReferenceDistribution]) -> None:
        s = self.settings
        self.monitor = DriftMonitor(
            self.names, references, window_ms=s.drift_window_ms,
            warn=s.drift_psi_warn, alert=s.drift_psi_alert,
        )  # fmt: skip

    def load_reference(self) -> None:
        """Registry reference, else a saved stream reference; else build one from the stream."""
        if self.monitor is not None:
            return
        model = self.settings.drift_reference_model
        found = load_registry_reference(self.settings, model) if model else None
        if found is not None:
            self.reference_model = (model, found[1])
            self._build_monitor(found[0])
        elif self.reference_path.exists():
            saved = json.loads(self.reference_path.read_text())
            self._build_monitor(
                {n: ReferenceDistribution.from_parts(**spec) for n, spec in saved.items()}
            )

    def _feed_reference(
        self, ts: np.ndarray, values: np.ndarray, parts: list[int], offs: list[int]
    ) -> None:
        """Reference phase: sample the stream's first event-time window, hold later records."""
        size = self.settings.drift_reference_size
        if self.reference_end is None:
            first = int(ts.min())
            self.reference_end = first - first % self.settings.drift_window_ms
            self.reference_end += self.settings.drift_window_ms
        inside = ts < self.reference_end
        for row in values[inside]:  # reservoir sample: bounded, unbiased across partitions
            self.seen += 1
            if len(self.sample) < size:
                self.sample.append(row)
            else:
                j = self.rng.integers(0, self.seen)
                if j < size:
                    self.sample[j] = row
        later = ~inside
        if later.any():
            self.held.append(
                (ts[later], values[later], np.asarray(parts)[later], np.asarray(offs)[later])
            )
            self.held_rows += int(later.sum())
        ready = min(self.partition_time.values()) >= self.reference_end
        if not ready and self.held_rows < 10 * size:
            return
        matrix = np.vstack(self.sample) if self.sample else np.empty((0, len(self.names)))
        refs: dict[str, ReferenceDistribution] = {}
        for i, name in enumerate(self.names):
            try:
                refs[name] = ReferenceDistribution.from_sample(matrix[:, i])
            except ValueError:  # a feature that never warmed up in the window
                log.warning("no reference for feature", feature=name)
        self.reference_path.parent.mkdir(parents=True, exist_ok=True)
        self.reference_path.write_text(json.dumps({n: r.to_dict() for n, r in refs.items()}))
        self.sample.clear()
        self._build_monitor(refs)
        assert self.monitor is not None
        self.monitor.closed_until = self.reference_end
        log.info("stream reference built", features=len(refs), vectors=len(matrix))
        held, self.held, self.held_rows = self.held, [], 0
        if held:  # one update: every held record is counted before any window closes
            h_ts, h_values, h_parts, h_offs = (np.concatenate(c) for c in zip(*held, strict=True))
            self.process(h_ts, h_values, h_parts.tolist(), h_offs.tolist())

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the reference, assign every partition at its committed offset."""
        self.load_reference()
        self.producer = BatchProducer(self.settings)
        self.consumer = group_consumer(self.settings, self.group, **{"fetch.wait.max.ms": 100})
        meta = self.consumer.list_topics(self.topic, timeout=10)
        parts = [TopicPartition(self.topic, p) for p in meta.topics[self.topic].partitions]
        committed = self.consumer.committed(parts, timeout=10)
        closed = [json.loads(tp.metadata)["closed_until"] for tp in committed if tp.metadata]
        if closed and self.monitor is not None:
            self.monitor.closed_until = max(closed)
        self.consumer.assign(committed)
        for tp in committed:  # partitions with data waiting hold the watermark back
            high = self.consumer.get_watermark_offsets(tp, timeout=10)[1]
            if high > max(tp.offset, 0):
                self.partition_time.setdefault(tp.partition, -(2**62))

    def step(self, timeout_s: float = 0.2) -> int:
        """One micro-batch: decode, update, publish closed windows, commit."""
        messages = self.consumer.consume(self.settings.batch_max_events, timeout=timeout_s)
        ts, rows, parts, offs = [], [], [], []
        version, width = self.feature_set.version, len(self.names)
        for message in messages:
            if message.error() is not None:
                continue
            self.positions[message.partition()] = message.offset() + 1
            try:
                record = self.codec.decode(message.value())
            except SchemaError as exc:
                self.metrics.record_dead_letter(self.topic, exc.reason)
                self.skipped += 1
                continue
            if record["feature_set_version"] != version or len(record["values"]) != width:
                self.skipped += 1
                continue
            ts.append(record["ts"])
            rows.append(record["values"])
            parts.append(message.partition())
            offs.append(message.offset())
        if rows:
            self.process(np.asarray(ts), np.asarray(rows, dtype=np.float64), parts, offs)
        return len(messages)

    def process(
        self, ts: np.ndarray, values: np.ndarray, parts: list[int], offs: list[int]
    ) -> None:
        """Feed a decoded batch (reference first, then the monitor) and publish results."""
        for p, t in zip(parts, ts.tolist(), strict=True):
            if t > self.partition_time.get(p, -(2**62)):
                self.partition_time[p] = t
        if self.monitor is None:
            self._feed_reference(ts, values, parts, offs)
            return
        watermark = min(self.partition_time.values())
        results = self.monitor.update(ts, values, parts, offs, watermark=watermark)
        if results:
            self.publish(results)
            self._commit()

    def publish(self, results: list[DriftResult]) -> None:
        """Produce DriftStat records, wait for delivery, set the PSI gauges."""
        assert self.producer is not None
        model, version = self.reference_model
        for r in results:
            record = {
                "feature": r.feature, "window_start": r.window_start,
                "window_end": r.window_end, "psi": r.psi, "ks": r.ks, "n": r.n,
                "reference_model_name": model, "reference_model_version": version,
                "feature_set_version": self.feature_set.version, "level": r.level,
                "symbol": None, "ks_pvalue": None,
            }  # fmt: skip
            self.producer.produce(
                self.drift_topic, r.feature.encode(), self.drift_codec.encode(record)
            )
        self.producer.flush()
        self.published += len(results)
        self.metrics.record_events(self.drift_topic, "out", len(results))
        self.metrics.set_drift({r.feature: r.psi for r in results})
        for r in results:
            if r.level != "OK":
                log.warning("drift", feature=r.feature, psi=round(r.psi, 4), level=r.level,
                            window_start=r.window_start)  # fmt: skip

    def _commit(self) -> None:
        if self.monitor is None or not self.positions:
            return
        bound = self.monitor.first_open_offsets()
        meta = json.dumps({"closed_until": self.monitor.closed_until})
        offsets = [
            TopicPartition(self.topic, p, bound.get(p, pos), metadata=meta)
            for p, pos in self.positions.items()
        ]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # a later commit covers it; a replay re-derives the same
            log.warning("drift commit failed", error=str(exc))

    def flush_partial(self) -> None:
        """Publish the open windows as they stand (a later complete window supersedes)."""
        if self.monitor is not None:
            results = self.monitor.flush()
            if results:
                self.publish(results)

    def run(self, stop: threading.Event | None = None, *, emit_partial: bool = True) -> None:
        """Loop until ``stop``; at the end publish partial windows when asked, then close."""
        stop = stop or threading.Event()
        self.start()
        try:
            while not stop.is_set():
                self.step()
            if emit_partial:
                self.flush_partial()
        finally:
            self.close()

    def close(self) -> None:
        """Leave without committing partial windows (they are re-read at the next start)."""
        if self.producer is not None:
            self.producer.flush()
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
