"""Champion/challenger: planted winner, equal models, false-promotion rate, cooldown, manual."""

from __future__ import annotations

from typing import Any

import pytest

from online_learning.promotion import (
    ChampionChallengerTest,
    ModelRef,
    PromotionController,
    PromotionError,
    PromotionPolicy,
)
from streams.codec import get_codec
from tests.unit.online_learning.helpers import paired_outcomes, prediction

POLICY = PromotionPolicy(min_samples=500, alpha=0.05, min_effect=0.02, cooldown_s=600)


class FakeRegistry:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, name: str, version: str, reason: str) -> None:
        self.calls.append((name, version, reason))


def _controller(policy: PromotionPolicy = POLICY) -> tuple[PromotionController, FakeRegistry, list]:
    registry, events = FakeRegistry(), []
    ctl = PromotionController(ChampionChallengerTest(policy), registry, events.append)
    return ctl, registry, events


@pytest.mark.parametrize("test", ["dm", "welch", "both"])
def test_planted_better_challenger_is_promoted(test: str) -> None:
    policy = PromotionPolicy(min_samples=500, test=test)  # type: ignore[arg-type]
    ctl, registry, events = _controller(policy)
    outcomes = paired_outcomes(seed=1, n=600, champ_skill=0.0, chall_skill=1.0)
    ctl.test.add(outcomes)
    decision = ctl.step(now_ts=10_000_000)
    assert decision.promote, decision.reason
    assert decision.challenger == ModelRef("river-logreg", "online-10")
    assert decision.p_value < 0.01
    assert decision.effect > 0.1
    assert decision.n == 600
    assert registry.calls == [("river-logreg", "online-10", decision.reason)]
    (event,) = events
    assert event["event_type"] == "PROMOTED"
    assert event["from_version"] == "1"
    assert event["statistics"]["n"] == 600.0
    assert event["inputs"]["policy.test"] == test
    get_codec("ModelEvent").encode(event)  # fits the Avro contract
    assert ctl.test.champion == ModelRef("river-logreg", "online-10")


def test_equal_challenger_is_not_promoted() -> None:
    ctl, registry, events = _controller()
    ctl.test.add(paired_outcomes(seed=3, n=600, champ_skill=0.8, chall_skill=0.8))
    decision = ctl.step(now_ts=10_000_000)
    assert not decision.promote
    assert decision.evaluated
    assert registry.calls == []
    assert [e["event_type"] for e in events] == ["REJECTED"]
    get_codec("ModelEvent").encode(events[0])


def test_worse_challenger_is_not_promoted() -> None:
    ctl, registry, _ = _controller()
    ctl.test.add(paired_outcomes(seed=4, n=600, champ_skill=1.0, chall_skill=0.0))
    assert not ctl.step(10_000_000).promote
    assert registry.calls == []


def test_insufficient_samples() -> None:
    ctl, _, events = _controller()
    ctl.test.add(paired_outcomes(seed=5, n=100, champ_skill=0.0, chall_skill=2.0))
    decision = ctl.step(10_000_000)
    assert not decision.promote
    assert not decision.evaluated
    assert "insufficient" in decision.reason
    assert decision.n == 100
    assert events == []


def _false_promotion_rate(policy: PromotionPolicy, seeds: int = 200) -> float:
    promoted = 0
    for seed in range(seeds):
        test = ChampionChallengerTest(policy)
        test.add(paired_outcomes(seed=1000 + seed, n=policy.min_samples, champ_skill=0.5,
                                 chall_skill=0.5))  # fmt: skip
        promoted += test.decide(10_000_000).promote
    return promoted / seeds


@pytest.mark.parametrize("test", ["dm", "welch"])
def test_false_promotion_rate_under_the_null(test: str) -> None:
    # min_effect=0 measures the test's own level (the effect floor would only hide a bias)
    policy = PromotionPolicy(min_samples=300, alpha=0.05, min_effect=0.0, test=test)  # type: ignore[arg-type]
    rate = _false_promotion_rate(policy)
    print(f"false-promotion rate ({test}, alpha=0.05, 200 seeds): {rate:.3f}")
    assert rate <= 0.05 + 0.04  # alpha + ~2.6 binomial sds (sd = 0.0154 at n=200)


def test_pairing_is_exact_by_symbol_and_ts() -> None:
    test = ChampionChallengerTest(POLICY)
    outcomes = paired_outcomes(seed=6, n=50, champ_skill=0.5, chall_skill=0.5)
    champ = [o for o in outcomes if o["role"] == "CHAMPION"]
    chall = [o for o in outcomes if o["role"] == "CHALLENGER"]
    test.add(chall[::-1])  # challenger first, reversed: order must not matter
    assert test.n_pairs("river-logreg") == 0
    test.add(champ[:20])
    test.add(champ[:20])  # a replay adds nothing
    assert test.n_pairs("river-logreg") == 20
    pairs = test.pairs["river-logreg"]
    for o in champ[:20]:
        twin = next(c for c in chall if (c["symbol"], c["ts"]) == (o["symbol"], o["ts"]))
        assert pairs[(o["symbol"], o["ts"])][:2] == (o["loss"], twin["loss"])


def test_cooldown_prevents_flapping() -> None:
    ctl, registry, _ = _controller()
    ctl.test.add(paired_outcomes(seed=7, n=600, champ_skill=0.0, chall_skill=1.0))
    t0 = 10_000_000
    assert ctl.step(t0).promote
    assert ctl.test.cooldown_until == t0 + 600_000
    # the old champion now looks better, as challenger "champ:1", but the cooldown holds
    back = paired_outcomes(seed=8, n=600, champ_skill=0.0, chall_skill=1.5,
                           challenger=("champ", "1"))  # fmt: skip
    for o in back:
        if o["role"] == "CHAMPION":
            o["model_name"], o["model_version"] = "river-logreg", "online-10"
    ctl.test.add(back)
    decision = ctl.step(t0 + 599_999)
    assert not decision.promote
    assert "cooldown" in decision.reason
    assert ctl.step(t0 + 600_000).promote
    assert [c[:2] for c in registry.calls] == [("river-logreg", "online-10"), ("champ", "1")]


def test_registry_failure_keeps_the_champion_and_says_why() -> None:
    def broken(name: str, version: str, reason: str) -> None:
        raise ConnectionError("mlflow down")

    events: list[dict[str, Any]] = []
    ctl = PromotionController(ChampionChallengerTest(POLICY), broken, events.append)
    ctl.test.add(paired_outcomes(seed=9, n=600, champ_skill=0.0, chall_skill=1.0))
    decision = ctl.step(10_000_000)
    assert not decision.promote
    assert "mlflow down" in decision.reason
    assert ctl.test.champion == ModelRef("champ", "1")
    assert events[-1]["event_type"] == "REJECTED"


def test_manual_promotion_and_rollback_are_recorded() -> None:
    ctl, registry, events = _controller()
    ctl.test.add([o for o in paired_outcomes(10, 10, 0.5, 0.5) if o["role"] == "CHAMPION"])
    assert ctl.test.champion == ModelRef("champ", "1")
    ctl.promote_by_hand("alice", "2", "hotfix", now_ts=5)
    ctl.promote_by_hand("alice", "3", "retrained", now_ts=6)
    event = ctl.rollback("bob", "v3 misbehaves", now_ts=7)
    assert ctl.test.champion == ModelRef("champ", "2")
    assert (event["event_type"], event["version"], event["from_version"]) == (
        "ROLLED_BACK", "2", "3",
    )  # fmt: skip
    assert [c[1] for c in registry.calls] == ["2", "3", "2"]
    assert [e["actor"] for e in events] == ["alice", "alice", "bob"]
    ctl.rollback("bob", "back to v1", now_ts=8)
    assert ctl.test.champion == ModelRef("champ", "1")
    with pytest.raises(PromotionError) as info:
        ctl.rollback("bob", "nothing left", now_ts=9)
    assert info.value.reason == "no_history"
    with pytest.raises(PromotionError):
        ctl.promote_by_hand("alice", "1", "same", now_ts=10)
    codec = get_codec("ModelEvent")
    assert all(codec.decode(codec.encode(e))["actor"] == e["actor"] for e in events)


def test_late_outcomes_of_a_former_champion_are_ignored() -> None:
    test = ChampionChallengerTest(POLICY)
    test.add([prediction_outcome(ts=100, version="2")])
    test.add([prediction_outcome(ts=50, version="1")])
    assert test.champion == ModelRef("champ", "2")


def prediction_outcome(ts: int, version: str) -> dict[str, Any]:
    from online_learning.outcomes import resolve

    return resolve(prediction(ts, 0.6, version=version), 10.0, 11.0, ts + 1)
