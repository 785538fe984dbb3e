"""Kafka topic specs (``infra/kafka/topics.yaml``) and their idempotent application.

    spec = load_topic_spec()                      # validated pydantic model of the YAML file
    spec.resolve(settings)                        # -> [DesiredTopic] with prefix and partitions
    plan_changes(desired, existing)               # pure diff -> [TopicChange]
    apply_topics(settings)                        # create missing topics, align configs

Logical names (``ticks``) become real names through ``settings.topic(name)`` (the
``TICKCAST_TOPIC_PREFIX`` namespace). Every per-symbol topic gets ``settings.partitions``
partitions so that one worker owns all state of a symbol (co-partitioning).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams import kafka_admin
from streams.kafka_admin import TopicState, kafka_health
from tickcast.config import Settings, load_settings
from tickcast.errors import ConfigError, DependencyError

__all__ = [
    "REQUIRED_TOPICS",
    "DesiredTopic",
    "TopicChange",
    "TopicSpec",
    "TopicsFile",
    "apply_topics",
    "kafka_health",
    "load_topic_spec",
    "plan_changes",
]

TICKS = "ticks"
TICKS_DLQ = "ticks.dlq"
FEATURES = "features"
FEATURE_STATE = "feature-state"
PREDICTIONS = "predictions"
OUTCOMES = "outcomes"
DRIFT = "drift"
MODEL_EVENTS = "model-events"
MACRO = "macro"
NEWS = "news"
#: Logical topics the code relies on; the spec must declare each of them.
REQUIRED_TOPICS: tuple[str, ...] = (
    TICKS,
    TICKS_DLQ,
    FEATURES,
    PREDICTIONS,
    OUTCOMES,
    DRIFT,
    MODEL_EVENTS,
)

PER_SYMBOL = "per_symbol"
_LEGAL_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_NAME = 249
_log = structlog.get_logger("tickcast.topics")


def default_spec_path(settings: Settings | None = None) -> Path:
    """``<kafka_home>/topics.yaml`` (``infra/kafka/topics.yaml`` in the repository)."""
    home = (settings if settings is not None else load_settings()).kafka_home
    return Path(home) / "topics.yaml"


class TopicSpec(BaseModel):
    """One logical topic as declared in the YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=_MAX_NAME)
    partitions: int | Literal["per_symbol"] = Field(
        description="'per_symbol' (Settings.partitions) or a fixed count ≥ 1"
    )
    replication_factor: int | None = Field(None, ge=1)
    retention_ms: int = Field(ge=-1, description="-1 keeps records forever")
    cleanup_policy: Literal["delete", "compact", "compact,delete"]
    key: str = "symbol"
    description: str = Field(min_length=1)
    configs: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _legal_name(cls, value: str) -> str:
        if not _LEGAL_NAME.match(value) or value in {".", ".."}:
            raise ValueError(f"{value!r}: a topic name uses only letters, digits, '.', '_', '-'")
        if value.startswith("__"):
            raise ValueError(f"{value!r}: names starting with '__' are Kafka's internal topics")
        return value

    @field_validator("partitions")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("partitions must be ≥ 1 or 'per_symbol'")
        return value

    @field_validator("configs", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _no_shadowed_configs(self) -> TopicSpec:
        shadowed = {"retention.ms", "cleanup.policy"} & set(self.configs)
        if shadowed:
            raise ValueError(
                f"set {sorted(shadowed)} with retention_ms/cleanup_policy, not configs"
            )
        return self

    @property
    def per_symbol(self) -> bool:
        """Whether the topic is keyed by symbol and shares the per-symbol partition count."""
        return self.partitions == PER_SYMBOL

    def topic_configs(self) -> dict[str, str]:
        """The topic-level configs to create with and keep aligned."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **self.configs,
        }


class Defaults(BaseModel):
    """Values every topic inherits unless it sets its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replication_factor: int = Field(1, ge=1)


class TopicsFile(BaseModel):
    """The whole ``topics.yaml`` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    defaults: Defaults = Defaults(replication_factor=1)
    topics: list[TopicSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_and_complete(self) -> TopicsFile:
        names = [t.name for t in self.topics]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate topic names: {duplicates}")
        # Kafka's metric names treat '.' and '_' alike, so such names collide.
        folded: dict[str, str] = {}
        for name in names:
            other = folded.setdefault(name.replace(".", "_"), name)
            if other != name:
                raise ValueError(f"topic names {other!r} and {name!r} collide ('.' vs '_')")
        missing = [n for n in REQUIRED_TOPICS if n not in names]
        if missing:
            raise ValueError(f"required topics missing: {missing}")
        return self

    def get(self, name: str) -> TopicSpec:
        """The spec of a logical topic; KeyError when it is not declared."""
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(name)

    def resolve(self, settings: Settings) -> list[DesiredTopic]:
        """Real names, partition counts and configs under ``settings`` (prefix, partitions)."""
        desired = []
        for t in self.topics:
            name = settings.topic(t.name)
            if len(name) > _MAX_NAME or not _LEGAL_NAME.match(name):
                raise ConfigError(
                    f"TICKCAST_TOPIC_PREFIX={settings.topic_prefix!r} makes an illegal "
                    f"topic name {name!r} (letters, digits, '.', '_', '-'; ≤ {_MAX_NAME})"
                )
            partitions = settings.partitions if t.per_symbol else int(t.partitions)
            replication = t.replication_factor or self.defaults.replication_factor
            desired.append(DesiredTopic(name, partitions, replication, t.topic_configs()))
        return desired


def load_topic_spec(path: Path | str | None = None) -> TopicsFile:
    """Load and validate the topic spec; raises ConfigError with every problem on one line."""
    spec_path = Path(path) if path is not None else default_spec_path()
    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read topic spec {spec_path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"topic spec {spec_path} is not valid YAML: {exc}") from None
    try:
        return TopicsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid topic spec {spec_path}: {problems}") from None


@dataclass(frozen=True)
class DesiredTopic:
    """A topic as it should exist on the broker."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicChange:
    """One step to bring the broker in line: create, set configs, or add partitions."""

    action: Literal["create", "alter", "add_partitions", "conflict"]
    topic: DesiredTopic
    configs: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""


def plan_changes(
    desired: Sequence[DesiredTopic],
    existing: Mapping[str, TopicState],
    allow_partition_increase: bool = False,
) -> list[TopicChange]:
    """The changes that make ``existing`` match ``desired`` (pure; empty when aligned).

    Partition counts are never lowered (Kafka cannot) and are raised only when allowed,
    because a new count re-keys every symbol: otherwise a mismatch is a ``conflict``.
    """
    changes: list[TopicChange] = []
    for topic in desired:
        state = existing.get(topic.name)
        if state is None:
            changes.append(TopicChange("create", topic))
            continue
        if state.partitions != topic.partitions:
            grow = state.partitions < topic.partitions and allow_partition_increase
            changes.append(
                TopicChange(
                    "add_partitions" if grow else "conflict",
                    topic,
                    detail=f"has {state.partitions} partitions, spec wants {topic.partitions}",
                )
            )
        drift = {k: v for k, v in topic.configs.items() if state.configs.get(k) != v}
        if drift:
            changes.append(TopicChange("alter", topic, configs=drift))
    return changes


def apply_topics(
    settings: Settings,
    spec: TopicsFile | None = None,
    timeout_s: float = 10.0,
    allow_partition_increase: bool = False,
) -> list[str]:
    """Create missing topics and align configs; return the names of topics created or changed.

    Idempotent: a second call returns ``[]``. Raises DependencyError when the broker is
    unreachable or refuses, ConfigError when an existing topic's partition count differs
    from the spec (use a new ``TICKCAST_TOPIC_PREFIX``, or ``allow_partition_increase``).
    """
    spec = spec if spec is not None else load_topic_spec(default_spec_path(settings))
    desired = spec.resolve(settings)
    admin = kafka_admin.make_admin(settings, timeout_s)
    brokers = kafka_admin.broker_count(admin, settings, timeout_s)
    too_wide = [t.name for t in desired if t.replication_factor > brokers]
    if too_wide:
        raise DependencyError(
            "kafka",
            f"{brokers} broker(s) cannot hold replication factor of {too_wide}",
            "lower replication_factor in infra/kafka/topics.yaml or add brokers",
        )
    existing = kafka_admin.describe_topics(admin, settings, [t.name for t in desired], timeout_s)
    changes = plan_changes(desired, existing, allow_partition_increase)
    conflicts = [f"{c.topic.name} {c.detail}" for c in changes if c.action == "conflict"]
    if conflicts:
        raise ConfigError(
            "partition counts differ from the spec: "
            + "; ".join(conflicts)
            + " (changing them re-keys symbols: use a new TICKCAST_TOPIC_PREFIX)"
        )
    created = kafka_admin.create_topics(
        admin,
        [
            (c.topic.name, c.topic.partitions, c.topic.replication_factor, c.topic.configs)
            for c in changes
            if c.action == "create"
        ],
        timeout_s,
    )
    kafka_admin.alter_topic_configs(
        admin, {c.topic.name: c.configs for c in changes if c.action == "alter"}, timeout_s
    )
    kafka_admin.add_partitions(
        admin,
        {c.topic.name: c.topic.partitions for c in changes if c.action == "add_partitions"},
        timeout_s,
    )
    changed = [c.topic.name for c in changes if c.action != "create"]
    for change in changes:
        _log.info(
            "topic_changed",
            action=change.action,
            topic=change.topic.name,
            partitions=change.topic.partitions,
            configs=dict(change.configs),
            detail=change.detail,
        )
    return list(dict.fromkeys([*created, *changed]))
