"""Thin adapter over ``confluent_kafka.admin.AdminClient``: connect, describe, create, alter.

Everything that talks to the broker for topic administration lives here, behind small
functions that take an ``AdminClient`` so a test can pass a fake. Broker failures become
:class:`tickcast.errors.DependencyError` with a hint that says how to start the broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.health import Health

START_HINT = "start it with: infra/kafka/kafka.sh start"
_LOG = logging.getLogger("tickcast.kafka.admin")


@dataclass(frozen=True)
class TopicState:
    """What the broker says about one topic: partition and replica counts, explicit configs."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


def make_admin(settings: Settings, timeout_s: float = 10.0) -> AdminClient:
    """An AdminClient for ``settings.kafka_bootstrap`` (librdkafka logs go to ``logging``)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": f"{settings.consumer_group}-admin",
        "socket.timeout.ms": int(timeout_s * 1000),
        "logger": _LOG,
    }
    return AdminClient(conf)


def _unreachable(settings: Settings, exc: BaseException) -> DependencyError:
    return DependencyError(
        "kafka", f"broker at {settings.kafka_bootstrap} is unreachable: {exc}", START_HINT
    )


def broker_count(admin: AdminClient, settings: Settings, timeout_s: float) -> int:
    """Number of live brokers; raises DependencyError when the cluster does not answer."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _unreachable(settings, exc) from None
    return len(metadata.brokers)


def describe_topics(
    admin: AdminClient, settings: Settings, names: Iterable[str], timeout_s: float
) -> dict[str, TopicState]:
    """The state of those of ``names`` that exist, with their non-default configs."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _unreachable(settings, exc) from None
    present = [n for n in names if n in metadata.topics and metadata.topics[n].error is None]
    if not present:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in present]
    futures = admin.describe_configs(resources, request_timeout=timeout_s)
    states: dict[str, TopicState] = {}
    for resource, future in futures.items():
        name = resource.name
        try:
            entries: dict[str, ConfigEntry] = future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise DependencyError("kafka", f"cannot describe topic {name}: {exc}") from None
        configs = {k: str(e.value) for k, e in entries.items() if e.value is not None}
        partitions = metadata.topics[name].partitions
        replicas = min((len(p.replicas) for p in partitions.values()), default=0)
        states[name] = TopicState(name, len(partitions), replicas, configs)
    return states


def create_topics(
    admin: AdminClient,
    topics: Iterable[tuple[str, int, int, Mapping[str, str]]],
    timeout_s: float,
) -> list[str]:
    """Create ``(name, partitions, replication_factor, configs)`` topics; return those created.

    A topic that another process created in the meantime is not an error.
    """
    new = [
        NewTopic(n, num_partitions=p, replication_factor=r, config=dict(c)) for n, p, r, c in topics
    ]
    if not new:
        return []
    futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise DependencyError("kafka", f"cannot create topic {name}: {exc}") from None
    return created


def alter_topic_configs(
    admin: AdminClient, changes: Mapping[str, Mapping[str, str]], timeout_s: float
) -> None:
    """Set (incrementally) the given configs of each topic; others stay as they are."""
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in configs.items()
            ],
        )
        for name, configs in changes.items()
        if configs
    ]
    if not resources:
        return
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout_s)
    for resource, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise DependencyError(
                "kafka", f"cannot alter configs of topic {resource.name}: {exc}"
            ) from None


def add_partitions(admin: AdminClient, totals: Mapping[str, int], timeout_s: float) -> None:
    """Grow topics to the given total partition counts."""
    if not totals:
        return
    futures = admin.create_partitions(
        [NewPartitions(n, t) for n, t in totals.items()], request_timeout=timeout_s
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise DependencyError("kafka", f"cannot add partitions to {name}: {exc}") from None


def kafka_health(settings: Settings, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether the broker answers a metadata request, and a one-line description for people."""
    admin = make_admin(settings, timeout_s=timeout)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return False, f"kafka unreachable at {settings.kafka_bootstrap}: {exc} ({START_HINT})"
    if not metadata.brokers:
        return False, f"kafka at {settings.kafka_bootstrap} answers but has no live broker"
    user_topics = [t for t in metadata.topics if not t.startswith("__")]
    ours = [t for t in user_topics if t.startswith(settings.topic_prefix)]
    return True, (
        f"kafka ok at {settings.kafka_bootstrap}: {len(metadata.brokers)} broker(s), "
        f"cluster {metadata.cluster_id}, controller {metadata.controller_id}, "
        f"{len(ours)} topic(s) with prefix {settings.topic_prefix!r}"
    )


def check_broker(settings: Settings, timeout: float = 3.0) -> Health:
    """Ask the broker for its metadata."""
    start = time.perf_counter()
    try:
        admin = AdminClient(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "socket.timeout.ms": int(timeout * 1000),
            }
        )
        meta = admin.list_topics(timeout=timeout)
    except Exception as exc:
        return Health(
            "kafka",
            False,
            f"{settings.kafka_bootstrap} does not answer: {exc}".splitlines()[0][:300],
            "run `tickcast up` (or infra/kafka/kafka.sh start) or fix TICKCAST_KAFKA_BOOTSTRAP",
            time.perf_counter() - start,
        )
    return Health(
        "kafka",
        True,
        f"{len(meta.brokers)} broker(s), {len(meta.topics)} topics at {settings.kafka_bootstrap}",
        seconds=time.perf_counter() - start,
    )
