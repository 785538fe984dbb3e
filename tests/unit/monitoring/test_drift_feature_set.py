"""Drift follows the feature set the worker computes: explicit, else the union of the served
models' registered sets (training.feature_choice), with the side columns when switched on; a
champion of a set the stream contains is compared on its own columns. A real MLflow sqlite
store in a tmp folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.worker import build_stage
from indicators.feature_sets import feature_set
from monitoring.drift_process import DriftAgent
from sidestreams.feature_sets import named
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.models import make_model
from training.reference import reference_from_matrix
from training.registry import register

CLASSIC, ALPHA = feature_set("classic"), feature_set("alpha158")


def _register(settings: Settings, name: str, names: tuple[str, ...], version: str) -> None:
    rng = np.random.default_rng(len(names))
    X = rng.standard_normal((300, len(names)))
    model = make_model("xgboost", 1, {"n_estimators": 3, "max_depth": 2})
    model.fit(pd.DataFrame(X, columns=list(names)), (X[:, 0] > 0).astype(int))
    packaged = PackagedModel("xgboost", model, names, version, 1, 0.004, (0, 1))
    reference = reference_from_matrix(X, names, version)
    register(packaged, name=name, feature_set=feature_set(_set_name(version)),
             reference=reference, settings=settings)  # fmt: skip


def _set_name(version: str) -> str:
    return "classic" if version == CLASSIC.version else "alpha158"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """``drift-classic`` (a champion on classic), ``drift-alpha`` (on alpha158), both with
    training references."""
    base = Settings(data_dir=tmp_path_factory.mktemp("mlflow"), mlflow_tracking_uri="",
                    mlflow_artifact_root="", online_shadow_models="",
                    side_macro_series="realgdp")  # fmt: skip
    _register(base, "drift-classic", CLASSIC.names, CLASSIC.version)
    _register(base, "drift-alpha", ALPHA.names, ALPHA.version)
    return base


def _agent(settings: Settings) -> tuple[DriftAgent, Metrics]:
    metrics = Metrics(process=False)
    return DriftAgent(settings, metrics=metrics), metrics


def test_drift_reads_the_union_of_the_served_models_sets_as_the_worker_computes(
    store: Settings,
) -> None:
    settings = store.model_copy(update={"model_name": "drift-classic,drift-alpha"})
    agent, metrics = _agent(settings)
    worker = build_stage(settings, Metrics(process=False)).engine.feature_set
    assert agent.feature_set.version == worker.version
    assert agent.names == worker.names == named("classic+alpha158", settings).names
    # the reference is the served (first) model's champion, a classic one: its 41 columns
    agent.load_reference()
    assert agent.reference.source == "champion"
    assert agent.reference.model == "drift-classic"
    assert set(agent.reference.distributions) == set(CLASSIC.names)
    assert metrics.value("tickcast_drift_reference_errors_total", reason="feature_set") is None


def test_drift_follows_each_served_model_and_the_side_switch(store: Settings) -> None:
    for model, fs in (("drift-alpha", ALPHA), ("drift-classic", CLASSIC)):
        agent, _ = _agent(store.model_copy(update={"model_name": model}))
        assert agent.feature_set.version == fs.version
        agent.load_reference()
        assert agent.reference.source == "champion"
        assert set(agent.reference.distributions) == set(fs.names)
    side = store.model_copy(update={"model_name": "drift-alpha", "side_features": True})
    agent, _ = _agent(side)
    worker = build_stage(side, Metrics(process=False)).engine.feature_set
    assert agent.feature_set.version == worker.version == named("alpha158+side", side).version
    agent.load_reference()  # an alpha158 champion on an alpha158+side stream: its columns
    assert set(agent.reference.distributions) == set(ALPHA.names)


def test_a_champion_of_a_set_the_stream_does_not_hold_is_refused(store: Settings) -> None:
    explicit = store.model_copy(update={"model_name": "drift-classic", "feature_set": "alpha158"})
    agent, metrics = _agent(explicit)
    assert agent.feature_set.version == ALPHA.version
    agent.load_reference()
    assert agent.reference.source == "stream"
    assert metrics.value("tickcast_drift_reference_errors_total", reason="feature_set") == 1
