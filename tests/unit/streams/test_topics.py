"""Topic spec loading, validation, resolution and the pure change plan (no broker needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.kafka_admin import TopicState
from streams.topics import (
    REQUIRED_TOPICS,
    DesiredTopic,
    load_topic_spec,
    plan_changes,
)
from tickcast.config import Settings
from tickcast.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[3] / "infra" / "kafka" / "topics.yaml"


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def _minimal(**overrides: Any) -> dict[str, Any]:
    topics = [
        {
            "name": name,
            "partitions": "per_symbol",
            "retention_ms": 1000,
            "cleanup_policy": "delete",
            "description": f"{name} topic",
        }
        for name in REQUIRED_TOPICS
    ]
    return {"version": 1, "topics": topics, **overrides}


def test_shipped_spec_is_valid_and_declares_every_required_topic() -> None:
    spec = load_topic_spec(SHIPPED)
    names = [t.name for t in spec.topics]
    assert set(REQUIRED_TOPICS) <= set(names)
    for topic in spec.topics:
        assert topic.description.strip()
        assert topic.replication_factor is None or topic.replication_factor >= 1
    # The per-symbol data path is co-partitioned.
    for name in ("ticks", "ticks.dlq", "features", "predictions", "outcomes"):
        assert spec.get(name).per_symbol, name
    # Changelog-like topics are compacted, event streams are not.
    assert spec.get("feature-state").cleanup_policy == "compact"
    assert spec.get("ticks").cleanup_policy == "delete"


def test_default_spec_path_is_the_shipped_file() -> None:
    assert load_topic_spec() == load_topic_spec(SHIPPED)


def test_resolve_applies_prefix_partitions_and_defaults() -> None:
    spec = load_topic_spec(SHIPPED)
    settings = Settings(topic_prefix="ns1-", partitions=7)
    desired = {d.name: d for d in spec.resolve(settings)}
    assert set(desired) == {f"ns1-{t.name}" for t in spec.topics}
    ticks = desired["ns1-ticks"]
    assert ticks.partitions == 7
    assert ticks.replication_factor == spec.defaults.replication_factor
    assert ticks.configs["retention.ms"] == str(spec.get("ticks").retention_ms)
    assert ticks.configs["cleanup.policy"] == "delete"
    assert desired["ns1-drift"].partitions == spec.get("drift").partitions
    per_symbol = {
        d.partitions
        for t, d in zip(spec.topics, spec.resolve(settings), strict=True)
        if t.per_symbol
    }
    assert per_symbol == {7}
    state = desired["ns1-feature-state"].configs
    assert state["min.cleanable.dirty.ratio"] == "0.1"


def test_bad_prefix_is_a_config_error() -> None:
    spec = load_topic_spec(SHIPPED)
    with pytest.raises(ConfigError, match="illegal topic name"):
        spec.resolve(Settings(topic_prefix="bad prefix/"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["topics"].append(dict(d["topics"][0])), "duplicate topic names"),
        (lambda d: d["topics"].pop(0), "required topics missing"),
        (lambda d: d["topics"][0].update(partitions=0), "partitions must be"),
        (lambda d: d["topics"][0].update(partitions="some"), "partitions"),
        (lambda d: d["topics"][0].update(retention_ms=-2), "retention_ms"),
        (lambda d: d["topics"][0].update(cleanup_policy="keep"), "cleanup_policy"),
        (lambda d: d["topics"][0].update(name="bad name"), "letters, digits"),
        (lambda d: d["topics"][0].update(name="__internal"), "internal"),
        (lambda d: d["topics"][0].update(colour="red"), "colour"),
        (lambda d: d["topics"][0].update(configs={"retention.ms": "1"}), "retention_ms/cleanup"),
        (lambda d: d["topics"][0].pop("description"), "description"),
        (lambda d: d.update(version=2), "version"),
        (
            lambda d: d["topics"].append({**d["topics"][1], "name": "ticks_dlq"}),
            "collide",
        ),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(tmp_path: Path, mutate: Any, message: str) -> None:
    doc = _minimal()
    mutate(doc)
    with pytest.raises(ConfigError, match=message) as info:
        load_topic_spec(_write(tmp_path, doc))
    assert str(tmp_path) in str(info.value)


def test_unreadable_or_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_topic_spec(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_topic_spec(_write(tmp_path, "topics: [\n  - name: x\n bad"))
    with pytest.raises(ConfigError, match="invalid topic spec"):
        load_topic_spec(_write(tmp_path, "just a string"))


def test_config_values_are_strings(tmp_path: Path) -> None:
    doc = _minimal()
    doc["topics"][0]["configs"] = {"segment.ms": 3600000, "unclean.leader.election.enable": False}
    spec = load_topic_spec(_write(tmp_path, doc))
    assert spec.topics[0].configs == {
        "segment.ms": "3600000",
        "unclean.leader.election.enable": "false",
    }


DESIRED = DesiredTopic("t", 4, 1, {"retention.ms": "10", "cleanup.policy": "delete"})


def test_plan_creates_missing_topics() -> None:
    changes = plan_changes([DESIRED], {})
    assert [(c.action, c.topic.name) for c in changes] == [("create", "t")]


def test_plan_is_empty_when_aligned() -> None:
    state = TopicState("t", 4, 1, {"retention.ms": "10", "cleanup.policy": "delete", "x": "y"})
    assert plan_changes([DESIRED], {"t": state}) == []


def test_plan_sets_only_drifted_configs() -> None:
    state = TopicState("t", 4, 1, {"retention.ms": "99", "cleanup.policy": "delete"})
    (change,) = plan_changes([DESIRED], {"t": state})
    assert change.action == "alter"
    assert dict(change.configs) == {"retention.ms": "10"}


def test_plan_never_changes_partitions_silently() -> None:
    fewer = TopicState("t", 2, 1, dict(DESIRED.configs))
    more = TopicState("t", 8, 1, dict(DESIRED.configs))
    assert [c.action for c in plan_changes([DESIRED], {"t": fewer})] == ["conflict"]
    assert [c.action for c in plan_changes([DESIRED], {"t": more})] == ["conflict"]
    grown = plan_changes([DESIRED], {"t": fewer}, allow_partition_increase=True)
    assert [c.action for c in grown] == ["add_partitions"]
    # Kafka cannot shrink a topic, allowed or not.
    shrink = plan_changes([DESIRED], {"t": more}, allow_partition_increase=True)
    assert [c.action for c in shrink] == ["conflict"]
    assert "has 8 partitions, spec wants 4" in shrink[0].detail


def test_unreachable_broker_is_a_dependency_error_and_unhealthy() -> None:
    from streams.topics import apply_topics, kafka_health
    from tickcast.errors import DependencyError

    nowhere = Settings(kafka_bootstrap="127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(DependencyError, match="unreachable") as info:
        apply_topics(nowhere, timeout_s=0.5)
    assert info.value.component == "kafka"
    assert "kafka.sh start" in info.value.hint
    ok, message = kafka_health(nowhere, timeout=0.5)
    assert not ok
    assert "127.0.0.1:1" in message
