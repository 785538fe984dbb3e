"""The learner stage's batch and checkpoint steps, without Kafka or MLflow."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from online_learning.challengers import default_challengers
from online_learning.checkpoint import Checkpoint
from online_learning.learner_process import LearnerStage
from online_learning.promotion import ModelRef, PromotionPolicy
from streams.codec import get_codec
from streams.raw_record import RawRecord
from tests.unit.online_learning.helpers import paired_outcomes
from tickcast.config import Settings
from tickcast.metrics import Metrics

NAMES = ["a", "b", "c"]


class MemoryStore:
    """save/load seams of the stage, keeping pickled checkpoints in memory."""

    def __init__(self) -> None:
        self.runs: list[bytes] = []

    def save(self, settings: Settings, challengers: list, *, state: Any = None) -> str:
        self.runs.append(pickle.dumps((challengers, state)))
        return f"run-{len(self.runs)}"

    def load(self, settings: Settings) -> Checkpoint | None:
        if not self.runs:
            return None
        challengers, state = pickle.loads(self.runs[-1])
        return Checkpoint(f"run-{len(self.runs)}", challengers, state, {})


def _features(symbol: str, ts: int) -> list[float]:
    rng = np.random.default_rng([ts, *symbol.encode()])
    return rng.normal(size=3).tolist()


def _records(outcomes: list[dict], start: int = 0) -> list[RawRecord]:
    codec = get_codec("Outcome")
    return [
        RawRecord("outcomes", 0, start + i, o["symbol"].encode(), codec.encode(o))
        for i, o in enumerate(outcomes)
    ]


def _stage(store: MemoryStore, events: list, promoted: list) -> LearnerStage:
    stage = LearnerStage(
        Settings(),
        Metrics(process=False),
        policy=PromotionPolicy(min_samples=300, cooldown_s=0),
        challengers=default_challengers(feature_names=NAMES)[:2],
        promoter=lambda n, v, r: promoted.append((n, v)),
        feature_lookup=_features,
        save=store.save,
        load=store.load,
    )
    stage.publish = lambda topic, key, value: events.append(get_codec("ModelEvent").decode(value))
    return stage


def test_batch_learns_evaluates_and_promotes_a_planted_winner() -> None:
    store, events, promoted = MemoryStore(), [], []
    stage = _stage(store, events, promoted)
    assert stage.restore() is False
    outcomes = paired_outcomes(0, 400, champ_skill=0.0, chall_skill=1.2)
    counts = stage.handle([*_records(outcomes), RawRecord("outcomes", 0, 10000, b"k", b"junk")])
    assert counts == {"outcomes": 800, "skipped": 0, "bad": 1, "learned": 800}
    assert [c.n_learned for c in stage.challengers] == [400, 400]  # each bar once
    assert promoted == [("river-logreg", "online-10")]
    assert events[-1]["event_type"] == "PROMOTED"
    assert stage.metrics.value("model_accuracy", model_version="champ:1") is not None
    assert stage.metrics.value(
        "tickcast_promotion_decisions_total", model="champ", decision="promote"
    ) == 1.0  # fmt: skip


def test_checkpoint_restore_resumes_and_skips_what_it_covers() -> None:
    store, events, promoted = MemoryStore(), [], []
    stage = _stage(store, events, promoted)
    outcomes = paired_outcomes(1, 200, 0.5, 0.5)
    records = _records(outcomes)
    stage.handle(records[:250])
    run_id = stage.checkpoint_now()
    assert run_id == "run-1"
    assert stage.checkpoint_now() is None
    assert {e["event_type"] for e in events} == {"CHECKPOINT"}
    learned = [c.n_learned for c in stage.challengers]

    restarted = _stage(store, [], [])
    assert restarted.restore() is True
    assert [c.n_learned for c in restarted.challengers] == learned
    X = np.random.default_rng(2).normal(size=(20, 3))
    for a, b in zip(stage.challengers, restarted.challengers, strict=True):
        np.testing.assert_array_equal(a.predict_proba_many(X), b.predict_proba_many(X))
    # the broker replays from the last commit: covered offsets are skipped, the rest learned
    counts = restarted.handle(records[100:])
    assert counts["skipped"] == 150
    assert counts["outcomes"] == 150
    stage.handle(records[250:])
    assert [c.n_learned for c in restarted.challengers] == [c.n_learned for c in stage.challengers]
    assert restarted.controller.test.champion == ModelRef("champ", "1")
    assert restarted.controller.publish is not None  # wired again after unpickling


def test_faust_app_is_built_in_its_own_consumer_group(tmp_path: Path) -> None:
    from online_learning.learner_process import build_learner_app

    app, runner = build_learner_app(
        Settings(data_dir=tmp_path), Metrics(process=False), load=lambda _: None
    )
    assert app.conf.id == "tickcast-learner"
    assert list(app.agents) == ["tickcast-learner-outcomes"]
    assert runner.stage.outcomes_topic == "outcomes"
    assert [c.name for c in runner.stage.challengers] == ["river-logreg", "river-hat", "river-arf"]


def test_live_state_is_the_json_the_api_reads() -> None:
    import orjson

    store, events, promoted = MemoryStore(), [], []
    stage = _stage(store, events, promoted)
    stage.handle(_records(paired_outcomes(0, 400, champ_skill=0.0, chall_skill=1.2)))
    metrics, state = stage.live_state(123)
    assert metrics["updated_at"] == 123
    assert "champ:1" in metrics["models"]
    assert metrics["models"]["champ:1"]["n_total"] > 0
    decoded = orjson.loads(orjson.dumps(state, default=str))
    assert decoded["last_decision"]["promote"] is True
    assert decoded["policy"]["min_samples"] == stage.controller.test.policy.min_samples
    # the contract serving/models.py documents for <prefix>model-test
    assert set(decoded) == {
        "updated_at", "champion", "cooldown_until", "policy", "pairs", "last_decision",
    }  # fmt: skip


def test_checkpoint_experiments_are_per_namespace() -> None:
    from online_learning.checkpoint import EXPERIMENT, experiment_name

    assert experiment_name(Settings()) == EXPERIMENT
    assert experiment_name(Settings(topic_prefix="demo.")) == f"{EXPERIMENT}-demo"
    assert experiment_name(Settings(topic_prefix="bt-1.")) != experiment_name(Settings())
