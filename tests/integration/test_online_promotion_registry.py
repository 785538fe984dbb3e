"""A winning online challenger becomes a registered champion (real MLflow sqlite store in tmp).

The learner stage runs with the real registry promoter and registrar; the registered version
is loaded back the way the scoring worker loads it and compared with the River model's own
``predict_proba_one`` (the independent reference).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.scoring import Scorer, load_model_set
from devtools.synthetic.outcomes import paired_outcomes
from online_learning.challengers import OnlineChallenger, default_challengers
from online_learning.checkpoint import save_checkpoint
from online_learning.frozen import FrozenRiverModel, RegistryRegistrar, checkpoint_lookup, freeze
from online_learning.learner_process import LearnerStage
from online_learning.promotion import (
    ChampionChallengerTest,
    ModelRef,
    PromotionController,
    PromotionError,
    PromotionPolicy,
    registry_promoter,
)
from streams.codec import get_codec
from streams.raw_record import RawRecord
from tests.integration.online_promotion import FSV, NAME, NAMES, feature_matrix, register_champion
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.registry import (
    champion,
    load_scoring_model,
    watch_aliases,
)

pytestmark = pytest.mark.integration

RETURN_SCALE = 0.0123


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return Settings(
        data_dir=tmp_path,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        mlflow_artifact_root=str(tmp_path / "artifacts"),
    )


def _register_champion(settings: Settings) -> Any:
    return register_champion(settings, RETURN_SCALE)


def _outcomes(
    seed: int, n: int, champ_skill: float, chall_skill: float, later_ms: int = 0
) -> list[dict[str, Any]]:
    """Paired outcomes against the registered champion, each carrying a feature vector that
    predicts its label (so the learner learns something real), with warm-up NaNs."""
    outcomes = paired_outcomes(seed, n, champ_skill, chall_skill, champion=(NAME, "1"))
    rng = np.random.default_rng(seed + 100)
    for o in outcomes:
        o["ts"] += later_ms
        o["realized_ts"] += later_ms
        signal = 1.0 if o["realized_return"] > 0 else -1.0
        x = (rng.normal(size=len(NAMES)) + np.array([signal, 0.0, -0.5 * signal, 0.0])).tolist()
        if rng.random() < 0.05:
            x[2] = math.nan
        o["features"] = x
    return outcomes


def _records(outcomes: list[dict[str, Any]], start: int = 0) -> list[RawRecord]:
    codec = get_codec("Outcome")
    return [
        RawRecord("outcomes", 0, start + i, o["symbol"].encode(), codec.encode(o))
        for i, o in enumerate(outcomes)
    ]


def _stage(
    settings: Settings, events: list[dict[str, Any]], challengers: list[OnlineChallenger]
) -> LearnerStage:
    stage = LearnerStage(
        settings,
        Metrics(process=False),
        policy=PromotionPolicy(min_samples=500, cooldown_s=0),
        challengers=challengers,
        promoter=registry_promoter(settings),
        register_online=True,
    )
    codec = get_codec("ModelEvent")
    stage.publish = lambda topic, key, value: events.append(codec.decode(value))
    return stage


def _river_reference(model: Any, river_names: tuple[str, ...], X: np.ndarray) -> np.ndarray:
    """P(up) row by row through River's own predict_proba_one (missing = left out)."""
    rows = [{n: v for n, v in zip(river_names, row, strict=True) if math.isfinite(v)} for row in X]
    return np.array([model.predict_proba_one(x)[True] for x in rows])


def _versions(settings: Settings) -> list[int]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))


def test_a_winning_river_challenger_becomes_the_registered_champion(settings: Settings) -> None:
    reference = _register_champion(settings)
    events: list[dict[str, Any]] = []
    stage = _stage(settings, events, default_challengers(seed=1)[:1])  # river-logreg
    records = _records(_outcomes(seed=1, n=700, champ_skill=0.0, chall_skill=1.2))
    stage.handle(records[:200])  # 100 pairs: no decision yet
    run_id = stage.checkpoint_now()
    stage.handle(records[200:])
    learner = stage.challenger("river-logreg")
    assert learner is not None
    assert learner.n_learned > 600
    assert learner.feature_set_version == FSV  # pinned by the first outcome it read
    live = pickle.loads(pickle.dumps(learner.model))  # the learner's state at the decision

    assert watch_aliases(settings, NAME) == (2, (1,))
    assert _versions(settings) == [1, 2]
    promoted = [e for e in events if e["event_type"] == "PROMOTED"]
    assert len(promoted) == 1, [e["reason"] for e in events if e["event_type"] != "CHECKPOINT"]
    event = promoted[0]
    assert (event["model_name"], event["version"], event["from_version"]) == (NAME, "2", "1")
    assert event["role"] == "CHAMPION"
    inputs = event["inputs"]
    assert inputs["online_name"] == "river-logreg"
    assert inputs["online_version"] == "online-10"  # the version the evidence names
    assert inputs["frozen_version"] == learner.version
    assert inputs["registered_version"] == "2"
    assert inputs["checkpoint_run_id"] == run_id
    assert inputs["reference_source"].startswith(f"champion {NAME} v1")
    assert event["statistics"]["n"] >= 500
    assert stage.controller.test.champion == ModelRef(NAME, "2")

    entry = champion(settings, NAME)
    assert entry is not None
    assert entry.version == 2
    assert entry.tags["source"] == "online"
    assert entry.tags["online_version"] == "online-10"
    assert entry.tags["feature_set_version"] == FSV

    loaded = load_scoring_model(settings, NAME, 2)
    assert loaded.role == "champion"
    assert isinstance(loaded.predictor, PackagedModel)
    assert isinstance(loaded.predictor.model, FrozenRiverModel)
    assert loaded.predictor.model.vectorised  # unpickled into the numpy form
    assert loaded.feature_names == NAMES
    assert (loaded.feature_set_version, loaded.horizon) == (FSV, 1)
    assert loaded.return_scale == RETURN_SCALE
    assert loaded.reference is not None
    assert loaded.reference.to_json() == reference.to_json()

    X = feature_matrix(64, 7)
    X[3] = np.nan  # a row that is all warm-up
    expected = _river_reference(live, tuple(learner.feature_names or ()), X)
    assert expected.std() > 0.05  # the learner learned the planted signal: not a constant
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-9, atol=1e-12)

    model_set = load_model_set(settings, NAME)
    assert model_set.champion is not None
    assert model_set.champion.version == 2
    scorer = Scorer(model_set, FSV)  # the scorer accepts it (same feature set, same width)
    rows = [{"symbol": "S", "ts": i, "feature_set_version": FSV, "values": X[i].tolist()}
            for i in range(len(X))]  # fmt: skip
    scored = [p for p in scorer.score(rows, 0) if p["role"] == "CHAMPION"]
    assert [p["model_version"] for p in scored] == ["2"] * len(X)
    np.testing.assert_allclose([p["prob_up"] for p in scored], expected, rtol=1e-9, atol=1e-12)

    stage.controller.rollback("bob", "back to the batch model")  # the usual way back
    assert watch_aliases(settings, NAME) == (1, (2,))

    stage.handle(_records(_outcomes(2, 50, 0.0, 0.0, later_ms=10**9), 10_000))
    assert learner.version != inputs["frozen_version"]  # the learner goes on learning ...
    again = load_scoring_model(settings, NAME, 2).predict_proba(X)
    np.testing.assert_array_equal(again, loaded.predict_proba(X))  # ... the champion does not


def test_an_equal_challenger_registers_nothing(settings: Settings) -> None:
    _register_champion(settings)
    events: list[dict[str, Any]] = []
    stage = _stage(settings, events, default_challengers(seed=1)[:1])
    stage.handle(_records(_outcomes(seed=3, n=600, champ_skill=0.8, chall_skill=0.8)))
    decision = stage.last_decision
    assert decision is not None
    assert decision.evaluated
    assert not decision.promote
    assert [e["event_type"] for e in events] == ["REJECTED"]
    assert _versions(settings) == [1]
    assert watch_aliases(settings, NAME) == (1, ())


def test_a_learner_of_another_feature_set_is_refused(settings: Settings) -> None:
    _register_champion(settings)
    events: list[dict[str, Any]] = []
    other = default_challengers(seed=1, feature_set_version="fs0")[:1]
    stage = _stage(settings, events, other)
    stage.handle(_records(_outcomes(seed=1, n=700, champ_skill=0.0, chall_skill=1.2)))
    (event,) = [e for e in events if e["event_type"] != "CHECKPOINT"]
    assert event["event_type"] == "REJECTED"
    assert "feature_set_mismatch" in event["reason"] or "feature set" in event["reason"]
    assert "'fs0'" in event["reason"]
    assert _versions(settings) == [1]
    assert watch_aliases(settings, NAME) == (1, ())
    assert stage.controller.test.champion == ModelRef(NAME, "1")
    with pytest.raises(PromotionError) as info:
        freeze(other[0], NAMES, FSV, 1)
    assert info.value.reason == "feature_set_mismatch"


def test_a_checkpointed_learner_is_promoted_by_hand(settings: Settings) -> None:
    _register_champion(settings)
    learner = default_challengers(seed=4, feature_names=NAMES)[0]
    X = feature_matrix(300, 5)
    learner.learn(X, np.nan_to_num(X[:, 0]) > 0, event_ts=1)
    run_id = save_checkpoint(settings, [learner])
    lookup, found_run = checkpoint_lookup(settings)
    assert found_run == run_id

    events: list[dict[str, Any]] = []
    controller = PromotionController(
        ChampionChallengerTest(PromotionPolicy()), registry_promoter(settings), events.append,
        register=RegistryRegistrar(settings, lookup, lambda: found_run),
    )  # fmt: skip
    event = controller.promote_by_hand("alice", learner.version, "manual", name=learner.name)
    assert (event["model_name"], event["version"]) == (NAME, "2")
    assert event["inputs"]["online_version"] == learner.version
    assert event["inputs"]["checkpoint_run_id"] == run_id
    assert watch_aliases(settings, NAME) == (2, (1,))
    expected = _river_reference(learner.model, NAMES, X[:40])
    got = load_scoring_model(settings, NAME, 2).predict_proba(X[:40])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_without_a_registrar_an_online_win_is_still_refused(settings: Settings) -> None:
    _register_champion(settings)
    events: list[dict[str, Any]] = []
    controller = PromotionController(
        ChampionChallengerTest(PromotionPolicy(min_samples=500)), registry_promoter(settings),
        events.append,
    )  # fmt: skip
    controller.test.add(_outcomes(seed=1, n=600, champ_skill=0.0, chall_skill=1.2))
    controller.step(10**9)
    assert events[-1]["event_type"] == "REJECTED"
    assert "not a registered model version" in events[-1]["reason"]
    assert _versions(settings) == [1]


def test_frozen_tree_scores_like_river_and_pickles() -> None:
    learner = default_challengers(seed=0, feature_names=NAMES)[1]  # river-hat: row-by-row path
    X = feature_matrix(600, 11)
    learner.learn(X, np.nan_to_num(X[:, 0] - X[:, 2]) > 0)
    frozen = freeze(learner, NAMES, FSV, 1)
    assert frozen.model is not learner.model
    assert not frozen.vectorised  # a tree keeps River's path
    packaged = PackagedModel("river-hat", frozen, NAMES, FSV, 1, 0.0)
    test = feature_matrix(50, 12)
    expected = _river_reference(learner.model, NAMES, test)
    assert len(set(expected.round(6))) > 1
    np.testing.assert_allclose(packaged.predict_proba(test), expected, rtol=1e-12)
    restored = pickle.loads(pickle.dumps(packaged))
    assert isinstance(restored.model, FrozenRiverModel)
    np.testing.assert_array_equal(restored.predict_proba(test), packaged.predict_proba(test))
    learner.learn(feature_matrix(400, 13), np.ones(400, dtype=bool))  # the learner moves on ...
    assert not np.allclose(_river_reference(learner.model, NAMES, test), expected)
    frame = pd.DataFrame(test, columns=list(NAMES))
    np.testing.assert_allclose(frozen.predict_proba(frame), expected, rtol=1e-12)  # ... not it
    with pytest.raises(PromotionError) as info:
        freeze(learner, NAMES, FSV, horizon=5)
    assert info.value.reason == "horizon_mismatch"
    with pytest.raises(PromotionError) as info:
        freeze(learner, ("a", "b", "c", "d"), FSV, 1)
    assert info.value.reason == "feature_mismatch"
