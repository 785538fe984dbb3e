"""The drift agent: ``features`` → PSI/KS per feature and event-time window → ``drift``.

One process reads *every* partition of ``features`` (manual assignment; PSI is across all
symbols, so the windows must see all of them) with confluent-kafka, decodes each
FeatureVector (values in the order of the set the worker computes, chosen at start the way
the worker chooses it, :func:`training.feature_choice.stream_feature_set`:
``TICKCAST_FEATURE_SET`` when set, else the union of the sets of the served models'
registered champions and challengers, else ``classic``, followed by the side columns with
``TICKCAST_SIDE_FEATURES``; vectors of another version are skipped), and feeds
micro-batches to
:class:`monitoring.drift.DriftMonitor`. The event-time watermark is the smallest of the
partitions' largest event times, every assigned partition counting from the start (an empty
one too, so a replay into empty topics does not close windows before its slower partitions
arrive), so a partition that lags does not see its records declared late. A partition with
no record for ``TICKCAST_DRIFT_IDLE_PARTITION_S`` (empty, or its producers stopped) stops
holding the watermark until its next record; records that then arrive for a closed window
are late: left out and counted (``tickcast_drift_late_records_total``). When the
watermark closes a window the agent produces one DriftStat per feature (key: feature) to
``drift`` (the ClickHouse sink stores them in the ``drift`` table) and sets the
``data_drift_psi{feature}`` gauge.

**Reference.** By default the training reference of the *champion of the served model* (the
first of ``TICKCAST_MODEL_NAME``; ``TICKCAST_DRIFT_REFERENCE_MODEL`` names another, or
``stream`` for none): the ``reference.json`` of the run behind its ``champion`` alias, see
:mod:`monitoring.drift_reference`. The registry is polled every
``TICKCAST_MODEL_POLL_INTERVAL_S`` in a background thread; when the alias moves (a batch
promotion, an online one, a rollback) the new version's reference replaces the current one
between two batches (:meth:`DriftAgent.switch`): the open windows are dropped and re-read from
their first offsets, so every window is computed against one reference, the one its PSI rows
name (``reference_model_name``/``_version``, the ``drift`` table's ``model_name``/
``model_version``). A reference that cannot be used (registry down, artifact missing or
garbage, another feature set) leaves the current one in place: logged
(``drift_reference_refused``) and counted (``tickcast_drift_reference_errors_total{reason}``).
``tickcast_drift_reference_info{source,model,version}`` says which one is in use, and
``tickcast_drift_reference_switches_total{source}`` counts the changes.

Only while no champion reference exists: a reference window of the stream itself (source
``stream``, model ``stream``, version ``reference-window``): the first event-time drift window
(a reservoir sample of at most ``TICKCAST_DRIFT_REFERENCE_SIZE`` vectors) gives decile bins
per feature; records of later windows are held until the watermark passes that window (at
most 10× that size), then compared against it. It is saved to
``<data_dir>/drift/<group>.reference.json`` so a restart keeps the same one; the first window
itself gets no drift record. A champion registered later replaces it at the next poll.

**Restart.** Offsets committed (group ``<consumer_group>-drift``) are, per partition, the
first offset still feeding an open window, with ``{"closed_until": ms}`` as commit metadata;
a restart re-reads the open window and drops records of windows already emitted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

import numpy as np
import structlog
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from indicators.feature_set import FeatureSet
from monitoring.drift import DriftMonitor, DriftResult, ReferenceDistribution
from monitoring.drift_reference import (
    ChampionReferences,
    Reference,
    ReferenceRefused,
    Source,
    reference_model_name,
)
from sidestreams.feature_sets import named
from streams.codec import get_codec
from streams.consumers import group_consumer
from streams.producer import BatchProducer
from tickcast.config import Settings
from tickcast.errors import SchemaError
from tickcast.metrics import Metrics, get_metrics
from training.feature_choice import scored_sets, stream_feature_set

log = structlog.get_logger(__name__)
STREAM_REFERENCE = Reference("stream", "stream", "reference-window")


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
        champions: ChampionReferences | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``references`` fixes the reference (named ``reference_model``; no registry);
        otherwise ``champions`` (default: the registry, see :func:`reference_model_name`)."""
        self.settings = settings
        # the set the worker computes: explicit, or the served models' union (+ side columns)
        if feature_set is None:
            name, why = stream_feature_set(settings)
            feature_set = named(name, settings)
            log.info("drift_feature_set", name=name, why=why, version=feature_set.version)
        else:
            name = ""
        self.feature_set = feature_set
        self.names = self.feature_set.names
        # a champion of a set the stream contains (classic on classic+alpha158) is compared
        # on its own columns, as the worker scores it
        versions = {named(n, settings).version for n in scored_sets(name)} if name else set()
        versions.add(self.feature_set.version)
        self.metrics = metrics or get_metrics()
        self.topic = settings.topic("features")
        self.drift_topic = settings.topic("drift")
        self.codec = get_codec("FeatureVector")
        self.drift_codec = get_codec("DriftStat")
        self.group = f"{settings.consumer_group}-drift"
        self.reference_path = settings.data_dir / "drift" / f"{self.group}.reference.json"
        self.reference = STREAM_REFERENCE
        self.monitor: DriftMonitor | None = None
        self.champions = champions
        model = reference_model_name(settings)
        if references is not None:
            name, version = reference_model or (STREAM_REFERENCE.model, STREAM_REFERENCE.version)
            source: Source = "stream" if name == STREAM_REFERENCE.model else "champion"
            self._build_monitor(Reference(source, name, version, references))
        elif champions is None and model is not None:
            self.champions = ChampionReferences(settings, model, self.names, frozenset(versions))
        self.clock = clock
        self._poller: ThreadPoolExecutor | None = None
        self._poll: Future[Reference | None] | None = None
        self._next_poll = 0.0
        self.sample: list[np.ndarray] = []
        self.seen = 0
        self.rng = np.random.default_rng(0)
        self.reference_end: int | None = None
        self.held: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.held_rows = 0
        self.consumer: Any = None
        self.producer: BatchProducer | None = None
        self.positions: dict[int, int] = {}
        self.start_offsets: dict[int, int] = {}
        self.start_closed: int | None = None
        self.partition_time: dict[int, int] = {}
        self.last_active: dict[int, float] = {}
        self.skipped = 0
        self.published = 0

    @property
    def reference_model(self) -> tuple[str, str]:
        """(model, version) of the reference in use, as the DriftStat records name it."""
        return self.reference.model, self.reference.version

    # --- reference ---------------------------------------------------------------------------
    def _build_monitor(self, reference: Reference) -> None:
        s = self.settings
        self.monitor = DriftMonitor(
            self.names, dict(reference.distributions), window_ms=s.drift_window_ms,
            warn=s.drift_psi_warn, alert=s.drift_psi_alert,
        )  # fmt: skip
        self.reference = reference
        self.metrics.set_drift_reference(reference.source, reference.model, reference.version)

    def _poll_champion(self) -> Reference | None:
        """One registry poll (any thread): a new champion reference, or ``None``."""
        assert self.champions is not None
        current = self.reference.version if self.reference.source == "champion" else None
        return self.champions.poll(current)

    def _refused(self, exc: ReferenceRefused) -> None:
        self.metrics.drift_reference_errors.labels(reason=exc.reason).inc()
        self.metrics.set_dependency("mlflow", exc.reason != "registry")
        log.warning("drift_reference_refused", reason=exc.reason, model=exc.model or None,
                    version=exc.version or None, error=str(exc)[:300],
                    keeps=f"{self.reference.model} {self.reference.version}")  # fmt: skip

    def load_reference(self) -> None:
        """The champion's reference, else a saved stream reference; else build one from the
        stream (see the module doc)."""
        if self.monitor is not None:
            return
        found = None
        if self.champions is not None:
            try:
                found = self._poll_champion()
                self.metrics.set_dependency("mlflow", True)
            except ReferenceRefused as exc:
                self._refused(exc)
        if found is not None:
            self._build_monitor(found)
        elif self.reference_path.exists():
            saved = json.loads(self.reference_path.read_text())
            self._build_monitor(
                Reference(
                    "stream", STREAM_REFERENCE.model, STREAM_REFERENCE.version,
                    {n: ReferenceDistribution.from_parts(**spec) for n, spec in saved.items()},
                )
            )  # fmt: skip
        else:
            self.metrics.set_drift_reference("stream", *self.reference_model)
        log.info("drift_reference", source=self.reference.source, model=self.reference.model,
                 version=self.reference.version, built=self.monitor is not None,
                 watching=self.champions.model if self.champions else None)  # fmt: skip

    def refresh_reference(self, *, wait: bool = False) -> None:
        """Between batches: apply a finished registry poll, start one when due.

        ``wait=True`` polls now and applies the answer (tests, admin hooks).
        """
        if self.champions is None:
            return
        if wait:
            if self._poll is not None:
                wait_for([self._poll])  # its answer is superseded by the one below
                self._poll = None
            self._apply_poll(self._call(self._poll_champion))
            return
        job = self._poll
        if job is not None:
            if not job.done():
                return
            self._poll = None
            self._apply_poll(job)
        if self.clock() >= self._next_poll:
            self._next_poll = self.clock() + self.settings.model_poll_interval_s
            if self._poller is None:
                self._poller = ThreadPoolExecutor(1, thread_name_prefix="drift-reference")
            self._poll = self._poller.submit(self._poll_champion)

    @staticmethod
    def _call(fn: Callable[[], Reference | None]) -> Future[Reference | None]:
        done: Future[Reference | None] = Future()
        try:
            done.set_result(fn())
        except BaseException as exc:  # handed to _apply_poll like a thread's failure
            done.set_exception(exc)
        return done

    def _apply_poll(self, job: Future[Reference | None]) -> None:
        try:
            found = job.result()
        except ReferenceRefused as exc:
            self._refused(exc)
            return
        except Exception:  # a bug in a poll must not stop drift
            log.exception("drift_reference_poll_failed")
            self.metrics.drift_reference_errors.labels(reason="registry").inc()
            return
        self.metrics.set_dependency("mlflow", True)
        if found is not None:
            self.switch(found)

    def switch(self, reference: Reference) -> None:
        """Compare with ``reference`` from now on; the open windows are re-read under it.

        Partitions go back to the first offset of their open windows (to where this run
        started while the stream reference was still being sampled); the windows already
        published stay closed.
        """
        old = self.reference
        if self.monitor is not None:
            rewind = self.monitor.first_open_offsets()
            closed = self.monitor.closed_until
        else:
            rewind = {p: o for p, o in self.start_offsets.items() if p in self.positions}
            closed = self.start_closed
            self.sample.clear()
            self.seen, self.reference_end = 0, None
            self.held, self.held_rows = [], 0
        self._build_monitor(reference)
        assert self.monitor is not None
        self.monitor.closed_until = closed
        if self.consumer is not None:
            for p, offset in rewind.items():
                self.consumer.seek(TopicPartition(self.topic, p, offset))
                self.positions[p] = max(offset, 0)
        self.metrics.drift_reference_switches.labels(source=reference.source).inc()
        log.info("drift_reference_switched", source=reference.source, model=reference.model,
                 version=reference.version, previous_source=old.source,
                 previous_model=old.model, previous_version=old.version,
                 rewound=len(rewind))  # fmt: skip

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
        self._build_monitor(
            Reference("stream", STREAM_REFERENCE.model, STREAM_REFERENCE.version, refs)
        )
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
        self.start_closed = max(closed) if closed else None
        if closed and self.monitor is not None:
            self.monitor.closed_until = self.start_closed
        self.start_offsets = {
            tp.partition: tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in committed
        }
        self.consumer.assign(committed)
        self._next_poll = self.clock() + self.settings.model_poll_interval_s
        now = self.clock()
        for tp in committed:  # every partition holds the watermark back until it is idle
            self.partition_time.setdefault(tp.partition, -(2**62))
            self.last_active[tp.partition] = now

    def step(self, timeout_s: float = 0.2) -> int:
        """One micro-batch: decode, update, publish closed windows, commit.

        A new champion reference found by the registry poll is applied first, between batches.
        """
        self.refresh_reference()
        messages = self.consumer.consume(self.settings.batch_max_events, timeout=timeout_s)
        now = self.clock()
        ts, rows, parts, offs = [], [], [], []
        version, width = self.feature_set.version, len(self.names)
        for message in messages:
            if message.error() is not None:
                continue
            self.positions[message.partition()] = message.offset() + 1
            self.last_active[message.partition()] = now
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
        late = self.monitor.late
        results = self.monitor.update(ts, values, parts, offs, watermark=self.watermark())
        if self.monitor.late > late:
            self.metrics.drift_late.inc(self.monitor.late - late)
        if results:
            self.publish(results)
            self._commit()

    def watermark(self) -> int:
        """The smallest largest-event-time of the partitions that are not idle.

        A partition idle for ``drift_idle_partition_s`` (no record: empty, or its producers
        stopped) stops holding windows open; its records that arrive after a window closed
        are late (counted in ``tickcast_drift_late_records_total``, not in the window). At
        least one partition is active here: the batch being processed just came from it.
        """
        idle_after = self.settings.drift_idle_partition_s
        now = self.clock()
        active = [
            t
            for p, t in self.partition_time.items()
            if now - self.last_active.get(p, now) <= idle_after
        ]
        return min(active) if active else max(self.partition_time.values())

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
        if self._poller is not None:
            self._poller.shutdown(wait=False, cancel_futures=True)
            self._poller, self._poll = None, None
        if self.producer is not None:
            self.producer.flush()
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
