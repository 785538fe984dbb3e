"""Drift compares with the served model's champion reference, and follows the champion alias.

Real Kafka (features and drift topics), a real MLflow registry (sqlite store in tmp) and the
real ClickHouse sink into chDB: the PSI rows stored say which champion version they were
computed against, and their PSI equals numpy's histogram over that version's bins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from indicators.feature_set import FeatureSet
from monitoring.drift import EPS
from monitoring.drift_process import DriftAgent
from sinks.clickhouse import connect
from sinks.sink_process import SinkRunner
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.topics import apply_topics
from tests.support.ports import free_port
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.models import make_model
from training.reference import ReferenceDistributions, reference_from_matrix
from training.registry import promote, register

pytestmark = pytest.mark.integration
DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY
SYMBOLS, PER_DAY = 10, 30


@pytest.fixture
def registry_settings(settings: Settings, tmp_path: Path, namespace: str) -> Settings:
    """The test's namespace with its own MLflow store; the served model is the test's."""
    return settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow_artifact_root": str(tmp_path / "artifacts"),
            "model_name": f"{namespace}-h1",
            "drift_reference_model": "",  # the default: the served model's champion
            "drift_window_ms": DAY,
            "model_poll_interval_s": 0.2,
        }
    )


def _register(settings: Settings, reference: ReferenceDistributions) -> int:
    fs = FeatureSet.default()
    names = list(fs.names)
    rows = np.random.default_rng(0).normal(size=(40, len(names)))
    model = make_model("always_up").fit(pd.DataFrame(rows, columns=names), np.arange(40) % 2)
    packaged = PackagedModel("always_up", model, tuple(names), fs.version, 1, 0.01, (0, 40))
    return register(
        packaged, name=settings.model_name, reference=reference, settings=settings
    ).version


def _reference(shift: float, seed: int) -> ReferenceDistributions:
    fs = FeatureSet.default()
    matrix = np.random.default_rng(seed).normal(shift, 1.0, size=(2000, len(fs.names)))
    return reference_from_matrix(matrix, fs.names, fs.version)


def _produce_days(settings: Settings, days: range, rng: np.random.Generator) -> np.ndarray:
    """N(0, 1) feature vectors for ``days``; returns them as (day, row, feature)."""
    fs = FeatureSet.default()
    codec = get_codec("FeatureVector")
    producer = BatchProducer(settings)
    out = np.empty((len(days), PER_DAY * SYMBOLS, len(fs.names)))
    for d, day in enumerate(days):
        for step in range(PER_DAY):
            for s in range(SYMBOLS):
                values = rng.normal(size=len(fs.names))
                out[d, step * SYMBOLS + s] = values
                record = {"symbol": f"S{s:02d}", "ts": T0 + day * DAY + step * 60_000,
                          "feature_set_version": fs.version, "values": values.tolist()}  # fmt: skip
                producer.produce(
                    settings.topic("features"), record["symbol"].encode(), codec.encode(record)
                )
    producer.flush()
    return out


def _step_until(agent: DriftAgent, done: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        agent.step(0.1)


def _numpy_psi(reference: ReferenceDistributions, feature: str, values: np.ndarray) -> float:
    """PSI straight from the stored edges: np.histogram over open outer bins, the formula."""
    ref = reference[feature]
    edges = np.array([-np.inf, *ref.interior, np.inf])
    actual = np.histogram(values, edges)[0] / values.size
    e, a = np.maximum(np.array(ref.proportions), EPS), np.maximum(actual, EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _artifact(settings: Settings, run_id: str) -> Path:
    """The local file of a run's reference.json (the store is a directory here)."""
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient

    uri = MlflowClient(tracking_uri=settings.mlflow_uri).get_run(run_id).info.artifact_uri
    path = Path(urlparse(uri).path) / "reference.json"
    assert path.is_file(), path
    return path


def _stored(settings: Settings, expected_rows: int) -> list[tuple[Any, ...]]:
    runner = SinkRunner(settings, topics=["drift"])
    runner.start()
    client = connect(settings)
    db = settings.clickhouse_database
    sql = (
        f"SELECT toUnixTimestamp64Milli(window_start), feature, model_name, model_version, psi,"
        f" level FROM {db}.drift FINAL ORDER BY window_start, feature, model_version"
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            runner.step(0.1)
            rows = client.query(sql).result_rows if runner.committed_batches else []
            if len(rows) >= expected_rows:
                return [tuple(r) for r in rows]
            assert time.monotonic() < deadline, f"{len(rows)} of {expected_rows} drift rows"
    finally:
        runner.close()


def test_drift_follows_the_champion_reference_and_keeps_it_on_garbage(
    registry_settings: Settings,
) -> None:
    settings = registry_settings
    fs = FeatureSet.default()
    apply_topics(settings)
    ref_a, ref_b = _reference(0.0, 1), _reference(1.5, 2)
    assert _register(settings, ref_a) == 1  # the first version becomes the champion

    rng = np.random.default_rng(11)
    data = _produce_days(settings, range(2), rng)
    metrics = Metrics(process=False)
    agent = DriftAgent(settings, metrics=metrics)
    agent.start()
    try:
        assert agent.reference_model == (settings.model_name, "1")
        # day 0 closes (day 1 arrived) against A; day 1 stays open
        _step_until(agent, lambda: agent.published >= len(fs.names))
        _step_until(agent, lambda: sum(agent.positions.values()) >= 2 * 300)

        # v2 with reference B becomes the champion: drift switches at its next poll
        assert _register(settings, ref_b) == 2
        promote(settings, settings.model_name, 2, "test: a better model")
        _step_until(agent, lambda: agent.reference_model == (settings.model_name, "2"))
        assert metrics.value("tickcast_drift_reference_switches_total", source="champion") == 1

        # v3's reference.json is garbage: drift keeps B, logs and counts it
        v3 = _register(settings, ref_a)
        run_id = _run_id(settings, v3)
        _artifact(settings, run_id).write_bytes(b"\x00garbage{")
        promote(settings, settings.model_name, v3, "test: a broken artifact")
        _step_until(
            agent,
            lambda: metrics.value("tickcast_drift_reference_errors_total", reason="garbage") == 1,
        )
        assert agent.reference_model == (settings.model_name, "2")

        data = np.concatenate([data, _produce_days(settings, range(2, 4), rng)])
        _step_until(agent, lambda: agent.published >= 3 * len(fs.names))
        agent.flush_partial()  # day 3, still open
    finally:
        agent.close()

    info = "tickcast_drift_reference_info"
    labels = {"source": "champion", "model": settings.model_name}
    assert metrics.value(info, **labels, version="2") == 1
    assert metrics.value(info, **labels, version="1") is None
    assert metrics.value("tickcast_drift_reference_switches_total", source="champion") == 1

    rows = _stored(settings, 4 * len(fs.names))
    assert len(rows) == 4 * len(fs.names)
    by = {(ts, feature): (model, version, psi, level) for ts, feature, model, version, psi, level
          in rows}  # fmt: skip
    for day, (reference, version) in enumerate([(ref_a, "1"), (ref_b, "2"), (ref_b, "2"),
                                                (ref_b, "2")]):  # fmt: skip
        for i, feature in enumerate(fs.names):
            model, got_version, psi, level = by[(T0 + day * DAY, feature)]
            assert (model, got_version) == (settings.model_name, version), (day, feature)
            assert psi == pytest.approx(_numpy_psi(reference, feature, data[day, :, i]), rel=1e-9)
            assert level == ("OK" if version == "1" else "ALERT"), (day, feature, psi)


def _run_id(settings: Settings, version: int) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    return str(client.get_model_version(settings.model_name, str(version)).run_id)


def test_registry_down_falls_back_to_the_stream_window_without_crashing(
    registry_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = registry_settings.model_copy(
        update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"}
    )
    fs = FeatureSet.default()
    apply_topics(settings)
    _produce_days(settings, range(3), np.random.default_rng(5))
    metrics = Metrics(process=False)
    agent = DriftAgent(settings, metrics=metrics)
    agent.start()
    try:
        assert agent.reference_model == ("stream", "reference-window")
        assert metrics.value("tickcast_drift_reference_errors_total", reason="registry") == 1
        assert metrics.value("tickcast_dependency_up", component="mlflow") == 0
        # day 0 is the stream's reference window; day 1 is compared with it
        _step_until(agent, lambda: agent.published >= len(fs.names))
        errors = "tickcast_drift_reference_errors_total"
        # the registry is asked again at every poll
        _step_until(agent, lambda: (metrics.value(errors, reason="registry") or 0) >= 2)
    finally:
        agent.close()
    assert agent.reference_model == ("stream", "reference-window")
    stream = {"source": "stream", "model": "stream", "version": "reference-window"}
    assert metrics.value("tickcast_drift_reference_info", **stream) == 1


def test_an_online_promotion_moves_drift_to_the_new_version_with_the_same_reference(
    registry_settings: Settings,
) -> None:
    """A River challenger promoted online is registered with the replaced champion's
    reference (it has no training set): drift follows the alias to its version and keeps
    comparing with those distributions."""
    from online_learning.challengers import default_challengers
    from online_learning.frozen import register_online
    from online_learning.promotion import registry_promoter

    settings = registry_settings
    fs = FeatureSet.default()
    apply_topics(settings)
    ref_a = _reference(0.0, 1)
    assert _register(settings, ref_a) == 1
    _produce_days(settings, range(2), np.random.default_rng(3))
    metrics = Metrics(process=False)
    agent = DriftAgent(settings, metrics=metrics)
    agent.start()
    try:
        assert agent.reference_model == (settings.model_name, "1")
        _step_until(agent, lambda: agent.published >= len(fs.names))
        before = agent.monitor

        river = default_challengers(seed=1)[0]
        entry, lineage = register_online(
            settings, river, name=settings.model_name, won_version="online-0", reason="test"
        )
        assert lineage["reference_source"].startswith(f"champion {settings.model_name} v1")
        registry_promoter(settings)(settings.model_name, str(entry.version), "test: online win")
        _step_until(
            agent, lambda: agent.reference_model == (settings.model_name, str(entry.version))
        )
    finally:
        agent.close()
    assert agent.monitor is not None
    assert agent.monitor is not before
    assert before is not None
    for new, old in zip(agent.monitor.refs, before.refs, strict=True):
        np.testing.assert_array_equal(new.cuts, old.cuts)
        np.testing.assert_array_equal(new.expected, old.expected)
    info = {"source": "champion", "model": settings.model_name, "version": str(entry.version)}
    assert metrics.value("tickcast_drift_reference_info", **info) == 1
    assert metrics.value("tickcast_drift_reference_switches_total", source="champion") == 1
