"""Drift's reference choice: the served model's champion, garbage refused, switches rewind.

The agent is driven without a broker here (no consumer: the rewind is checked through
``first_open_offsets``); tests/integration/test_drift_reference.py runs it on the real
Kafka, MLflow and chDB.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.drift import ReferenceDistribution
from monitoring.drift_process import DriftAgent
from monitoring.drift_reference import (
    ChampionReferences,
    Reference,
    ReferenceRefused,
    parse_reference,
    reference_model_name,
)
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.reference import reference_from_matrix

NAMES = ["a", "b", "c"]


def _payload(shift: float = 0.0, fsv: str = "fs1", names: list[str] = NAMES) -> dict:
    rng = np.random.default_rng(3)
    matrix = rng.normal(shift, 1.0, size=(500, len(names)))
    return json.loads(reference_from_matrix(matrix, names, fsv).to_json())


def test_default_is_the_served_models_champion_and_stream_turns_it_off() -> None:
    s = Settings(model_name="tickcast-direction-h5,other-h1", drift_reference_model="")
    assert reference_model_name(s) == "tickcast-direction-h5"
    assert reference_model_name(s.model_copy(update={"drift_reference_model": "x"})) == "x"
    assert reference_model_name(s.model_copy(update={"drift_reference_model": "stream"})) is None
    assert Settings.model_fields["drift_reference_model"].default == ""


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([1, 2], "garbage"),
        ({"nope": 1}, "garbage"),
        ({"features": [{"name": "a", "edges": [0, 1, 2], "proportions": [1]}]}, "garbage"),
        ({"features": [{"name": "a", "edges": [0, 2, 1, 3], "proportions": [1, 1, 1]}]}, "garbage"),
        ({"features": [{"name": "a", "edges": "xyz", "proportions": [1, 1]}]}, "garbage"),
        ({"features": []}, "empty"),  # what register() stores for a model without reference
        (_payload(names=["x", "y"]), "empty"),  # none of the stream's features
        (_payload(fsv="fs0"), "feature_set"),
    ],
)
def test_unusable_references_are_refused_with_a_reason(payload: object, reason: str) -> None:
    with pytest.raises(ReferenceRefused) as info:
        parse_reference(payload, NAMES, "fs1")
    assert info.value.reason == reason


def test_reference_keeps_only_the_streams_features() -> None:
    refs = parse_reference(_payload(names=["a", "zz"]), NAMES, "fs1")
    assert set(refs) == {"a"}


class Registry(ChampionReferences):
    """The registry seam: champion versions and payloads from a dict (no MLflow)."""

    def __init__(self) -> None:
        super().__init__(Settings(), "m", NAMES, "fs1")
        self.version: str | None = None
        self.payloads: dict[str, object] = {}
        self.down = False
        self.fetches = 0

    def champion(self) -> tuple[str, str] | None:
        if self.down:
            raise ReferenceRefused("registry", "connection refused", self.model)
        return None if self.version is None else (self.version, f"run-{self.version}")

    def fetch(self, version: str, run_id: str) -> Reference:
        self.fetches += 1
        payload = self.payloads.get(version)
        if payload is None:
            raise ReferenceRefused("missing", "no reference.json", self.model, version)
        try:
            return Reference("champion", self.model, version, parse_reference(payload, NAMES))
        except ReferenceRefused as exc:
            raise ReferenceRefused(exc.reason, str(exc), self.model, version) from exc


def _agent(tmp_path, registry: Registry) -> tuple[DriftAgent, Metrics]:  # type: ignore[no-untyped-def]
    from indicators.feature_set import FeatureSet

    metrics = Metrics(process=False)
    fs = FeatureSet.default()
    settings = Settings(data_dir=tmp_path, drift_window_ms=1000)
    agent = DriftAgent(settings, metrics=metrics, champions=registry)
    agent.names = tuple(NAMES)  # the three features of this test
    agent.feature_set = fs
    return agent, metrics


def _info(metrics: Metrics, source: str, model: str, version: str) -> float | None:
    return metrics.value(
        "tickcast_drift_reference_info", source=source, model=model, version=version
    )


def test_stream_until_a_champion_then_switches_and_keeps_on_garbage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = Registry()
    agent, metrics = _agent(tmp_path, registry)
    agent.load_reference()
    assert agent.reference.source == "stream"
    assert agent.monitor is None
    assert _info(metrics, "stream", "stream", "reference-window") == 1

    registry.version, registry.payloads["1"] = "1", _payload()
    agent.refresh_reference(wait=True)
    assert agent.reference_model == ("m", "1")
    assert agent.monitor is not None
    assert _info(metrics, "champion", "m", "1") == 1
    assert _info(metrics, "stream", "stream", "reference-window") is None
    assert metrics.value("tickcast_drift_reference_switches_total", source="champion") == 1

    rng = np.random.default_rng(5)
    agent.monitor.update([10, 20, 1500], rng.normal(size=(3, 3)), [0, 1, 0], [4, 7, 5])
    assert agent.monitor.first_open_offsets() == {0: 5}
    first = agent.monitor

    registry.version, registry.payloads["2"] = "2", _payload(shift=2.0)
    agent.refresh_reference(wait=True)
    assert agent.reference_model == ("m", "2")
    assert agent.monitor is not first
    assert agent.monitor.closed_until == 1000  # published windows stay published
    assert agent.monitor.windows == {}  # the open one is re-read under the new reference
    first_feature = _payload(shift=2.0)["features"][0]
    expected = ReferenceDistribution.from_parts(
        first_feature["edges"], first_feature["proportions"]
    )
    np.testing.assert_allclose(agent.monitor.refs[0].cuts, expected.cuts)

    for version, payload, reason in (("3", "garbage", "garbage"), ("4", None, "missing")):
        registry.version = version
        if payload is not None:
            registry.payloads[version] = payload
        agent.refresh_reference(wait=True)
        assert agent.reference_model == ("m", "2")
        assert metrics.value("tickcast_drift_reference_errors_total", reason=reason) == 1
    registry.version = "3"
    fetches = registry.fetches
    agent.refresh_reference(wait=True)  # a garbage version is not fetched again
    assert registry.fetches == fetches
    registry.down = True
    agent.refresh_reference(wait=True)
    assert metrics.value("tickcast_drift_reference_errors_total", reason="registry") == 1
    assert metrics.value("tickcast_dependency_up", component="mlflow") == 0
    assert agent.reference_model == ("m", "2")
    assert _info(metrics, "champion", "m", "2") == 1
    assert metrics.value("tickcast_drift_reference_switches_total", source="champion") == 2


def test_a_fixed_reference_never_asks_the_registry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    refs = parse_reference(_payload(), NAMES)
    agent = DriftAgent(Settings(data_dir=tmp_path), references=refs, metrics=Metrics(process=False))
    assert agent.champions is None
    assert agent.reference_model == ("stream", "reference-window")


def test_the_background_poll_applies_between_batches_and_survives_failures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = Registry()
    registry.version, registry.payloads["1"] = "1", _payload()
    agent, metrics = _agent(tmp_path, registry)
    now = [0.0]
    agent.clock = lambda: now[0]
    agent.load_reference()
    assert agent.reference_model == ("m", "1")
    agent._next_poll = 5.0

    def settle() -> None:  # the job runs in the poller thread; apply it like step() does
        for _ in range(200):
            agent.refresh_reference()
            if agent._poll is None:
                return
            agent._poll.exception(timeout=5)  # done, whatever it raised
        raise AssertionError("poll never applied")

    registry.version, registry.payloads["2"] = "2", _payload(shift=1.0)
    agent.refresh_reference()  # not due yet: nothing asked
    assert agent._poll is None
    now[0] = 6.0
    agent.refresh_reference()  # due: the poll starts in the background
    assert agent._poll is not None
    settle()
    assert agent.reference_model == ("m", "2")

    registry.down, now[0] = True, 12.0
    agent.refresh_reference()
    settle()
    assert agent.reference_model == ("m", "2")
    assert metrics.value("tickcast_drift_reference_errors_total", reason="registry") == 1
    agent.close()
