"""Kafka: topic layouts and configs, consumer-group offsets, compacted topics and unread tails.

What a backup holds of each topic under ``TICKCAST_TOPIC_PREFIX``:

- its partition count, replication factor and the configs set on it (not broker defaults);
- a compacted topic (the worker's ``feature-state`` snapshots): every record;
- any other topic: the records from the lowest offset a consumer group of this deployment
  (``<consumer_group>`` and ``<consumer_group>-*``) has committed to its end, i.e. what some
  group had still to read. What every group has read is history: ClickHouse, Redis and the
  state hold its effects.

Order: group offsets first, then the records, so the state snapshots read are never older
than the offsets (a snapshot newer than its offsets is what the worker expects after a crash).
A restore recreates the topics, re-produces the records (offsets from 0, see
``recovery.rebase``), moves the worker's per-symbol offsets and commits the moved group
offsets.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigSource

from recovery.archive import KAFKA_RECORD, read_records, write_records
from recovery.errors import BackupError
from recovery.rebase import new_position, rebase_state
from streams import kafka_admin
from tickcast.config import Settings
from tickcast.errors import DependencyError

LAYOUT = "kafka/layout.json"
STATE_TOPIC, SOURCE_TOPIC = "feature-state", "ticks"
"""The worker's snapshots and the topic whose offsets they remember."""
_TIMEOUT_S = 30.0


def _file(logical: str) -> str:
    return f"kafka/topics/{logical}.avro"


def _our_topics(admin: AdminClient, settings: Settings) -> dict[str, int]:
    """Topic name → partition count of every topic of this deployment."""
    try:
        meta = admin.list_topics(timeout=10)
    except KafkaException as exc:
        raise DependencyError("kafka", f"{settings.kafka_bootstrap}: {exc}") from None
    prefix = settings.topic_prefix
    return {
        name: len(topic.partitions)
        for name, topic in meta.topics.items()
        if name.startswith(prefix) and not name.startswith("_") and topic.error is None
    }


def _set_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """The configs set on each topic (its own, not the broker's defaults)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    if not names:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=_TIMEOUT_S
    )
    own = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    return {
        resource.name: {
            k: str(e.value)
            for k, e in future.result(timeout=_TIMEOUT_S).items()
            if e.source == own and e.value is not None
        }
        for resource, future in futures.items()
    }


def _groups(admin: AdminClient, settings: Settings) -> list[str]:
    """The consumer groups of this deployment that the broker knows."""
    listed = admin.list_consumer_groups(request_timeout=_TIMEOUT_S).result(timeout=_TIMEOUT_S)
    base = settings.consumer_group
    return sorted(
        g.group_id for g in listed.valid if g.group_id == base or g.group_id.startswith(base + "-")
    )


def _committed(settings: Settings, group: str, topics: dict[str, int]) -> dict[str, dict[int, int]]:
    """The offsets ``group`` committed on ``topics`` (asked without joining the group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        asked = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        found = consumer.committed(asked, timeout=_TIMEOUT_S)
    finally:
        consumer.close()
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for tp in found:
        if tp.error is None and tp.offset >= 0:
            out[tp.topic][tp.partition] = tp.offset
    return dict(out)


def _read(settings: Settings, topic: str, ranges: dict[int, tuple[int, int]]) -> list[Any]:
    """The records of ``topic`` in ``[start, end)`` per partition."""
    wanted = {p: r for p, r in ranges.items() if r[1] > r[0]}
    if not wanted:
        return []
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.consumer_group}-backup",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in wanted.items()])
    position = {p: start for p, (start, _) in wanted.items()}
    out: list[Any] = []
    deadline = time.monotonic() + 600
    try:
        while any(position[p] < end for p, (_, end) in wanted.items()):
            if time.monotonic() > deadline:
                raise DependencyError("kafka", f"reading {topic} for the backup timed out")
            for message in consumer.consume(5000, timeout=0.5):
                partition, offset = message.partition(), message.offset()
                if partition is None or partition not in wanted:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # a gap at the end (compaction)
                        position[partition] = wanted[partition][1]
                    continue
                if offset is None:
                    continue
                if offset < wanted[partition][1]:
                    out.append(
                        {
                            "partition": partition,
                            "offset": offset,
                            "timestamp": message.timestamp()[1],
                            "key": message.key(),
                            "value": message.value(),
                            "headers": [
                                {"name": h[0], "value": h[1]} for h in (message.headers() or [])
                            ],
                        }
                    )
                position[partition] = max(position[partition], offset + 1)
    finally:
        consumer.close()
    return out


def backup_kafka(settings: Settings, root: Path) -> dict[str, Any]:
    """Write ``kafka/layout.json`` and one record file per topic that has records to keep."""
    admin = kafka_admin.make_admin(settings, _TIMEOUT_S)
    topics = _our_topics(admin, settings)
    if not topics:
        raise BackupError(f"kafka: no topic with prefix {settings.topic_prefix!r}")
    groups = {g: _committed(settings, g, topics) for g in _groups(admin, settings)}
    configs = _set_configs(admin, sorted(topics))
    probe = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "backup-probe"})
    prefix, base = settings.topic_prefix, settings.consumer_group
    layout: dict[str, Any] = {"topics": {}, "groups": {}}
    try:
        for name, partitions in sorted(topics.items()):
            logical = name[len(prefix) :]
            compacted = "compact" in configs[name].get("cleanup.policy", "")
            ranges: dict[int, tuple[int, int]] = {}
            for p in range(partitions):
                low, high = probe.get_watermark_offsets(TopicPartition(name, p), _TIMEOUT_S)
                starts = [c[name][p] for c in groups.values() if p in c.get(name, {})]
                start = low if compacted else max(low, min(starts, default=high))
                ranges[p] = (start, high)
            records = _read(settings, name, ranges)
            held = write_records(root / _file(logical), KAFKA_RECORD, records) if records else 0
            layout["topics"][logical] = {
                "partitions": partitions,
                "replication_factor": _replication(admin, name),
                "configs": configs[name],
                "compacted": compacted,
                "ranges": {str(p): list(r) for p, r in ranges.items()},
                "records": held,
            }
    finally:
        probe.close()
    for group, committed in groups.items():
        layout["groups"][group[len(base) :]] = {
            t[len(prefix) :]: {str(p): o for p, o in offsets.items()}
            for t, offsets in committed.items()
        }
    (root / LAYOUT).parent.mkdir(parents=True, exist_ok=True)
    (root / LAYOUT).write_text(json.dumps(layout, indent=1, sort_keys=True))
    return {
        "topics": len(layout["topics"]),
        "groups": sorted(layout["groups"]),
        "records": sum(t["records"] for t in layout["topics"].values()),
    }


def _replication(admin: AdminClient, name: str) -> int:
    partitions = admin.list_topics(name, timeout=10).topics[name].partitions.values()
    return min((len(p.replicas) for p in partitions), default=1)


def _layout(root: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((root / LAYOUT).read_text()))
    except (OSError, ValueError) as exc:
        raise BackupError(f"kafka: cannot read {root / LAYOUT}: {exc}") from None


def kafka_problems(settings: Settings, root: Path) -> list[str]:
    """Why the broker is not an empty restore target, if it is not."""
    layout = _layout(root)
    try:
        admin = kafka_admin.make_admin(settings, 10)
        existing = _our_topics(admin, settings)
    except (DependencyError, KafkaException) as exc:
        return [f"kafka: {exc}"]
    problems = []
    probe = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "restore-probe"})
    try:
        for logical, spec in layout["topics"].items():
            name = settings.topic(logical)
            if name not in existing:
                continue
            if existing[name] != spec["partitions"]:
                problems.append(
                    f"kafka: {name} has {existing[name]} partitions, "
                    f"the backup {spec['partitions']}"
                )
                continue
            for p in range(existing[name]):
                _low, high = probe.get_watermark_offsets(TopicPartition(name, p), _TIMEOUT_S)
                if high > 0:
                    problems.append(f"kafka: {name} is not empty (partition {p} ends at {high})")
                    break
    finally:
        probe.close()
    for suffix in layout["groups"] if existing else ():
        group = settings.consumer_group + suffix
        if _committed(settings, group, existing):
            problems.append(f"kafka: group {group} already has committed offsets")
    return problems


def restore_kafka(settings: Settings, root: Path) -> dict[str, Any]:
    """Recreate topics, re-produce their records, rebase the state, commit group offsets."""
    layout = _layout(root)
    admin = kafka_admin.make_admin(settings, _TIMEOUT_S)
    brokers = kafka_admin.broker_count(admin, settings, _TIMEOUT_S)
    specs: dict[str, dict[str, Any]] = layout["topics"]
    kafka_admin.create_topics(
        admin,
        [
            (
                settings.topic(t),
                s["partitions"],
                min(s["replication_factor"], brokers),
                s["configs"],
            )
            for t, s in specs.items()
        ],
        _TIMEOUT_S,
    )
    kafka_admin.alter_topic_configs(
        admin, {settings.topic(t): s["configs"] for t, s in specs.items()}, _TIMEOUT_S
    )
    records = {t: read_records(root / _file(t)) for t, s in specs.items() if s["records"]}
    held: dict[str, dict[int, list[int]]] = {}
    for logical, rows in records.items():
        rows.sort(key=lambda r: (r["partition"], r["offset"]))
        by_partition: dict[int, list[int]] = defaultdict(list)
        for r in rows:
            by_partition[r["partition"]].append(r["offset"])
        held[logical] = dict(by_partition)
    source = held.get(SOURCE_TOPIC, {})
    for row in records.get(STATE_TOPIC, []):
        if row["value"] is not None:
            row["value"] = rebase_state(row["value"], source)
    _produce(settings, records)
    _check_ends(settings, held)
    committed = _commit_groups(admin, settings, layout["groups"], held)
    return {
        "topics": len(specs),
        "records": sum(len(r) for r in records.values()),
        "groups": committed,
    }


def _produce(settings: Settings, records: dict[str, list[dict[str, Any]]]) -> None:
    """Produce every record to its partition, in offset order, and wait for all of them."""
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    for logical, rows in records.items():
        topic = settings.topic(logical)
        for r in rows:
            while True:
                try:
                    producer.produce(
                        topic,
                        value=r["value"],
                        key=r["key"],
                        partition=r["partition"],
                        timestamp=r["timestamp"] if r["timestamp"] > 0 else 0,
                        headers=[(h["name"], h["value"]) for h in r["headers"]] or None,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
    left = producer.flush(120)
    if left or failed:
        raise DependencyError(
            "kafka", f"restore produce failed: {left} undelivered, errors {failed[:3]}"
        )


def _check_ends(settings: Settings, held: dict[str, dict[int, list[int]]]) -> None:
    """Every restored partition ends where the rebased offsets assume (it started empty)."""
    probe = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "restore-probe"})
    try:
        for logical, partitions in held.items():
            for p, offsets in partitions.items():
                _, high = probe.get_watermark_offsets(
                    TopicPartition(settings.topic(logical), p), _TIMEOUT_S
                )
                if high != len(offsets):
                    raise BackupError(
                        f"kafka: {settings.topic(logical)}[{p}] ends at {high} after the restore, "
                        f"expected {len(offsets)}: the topic was written to meanwhile"
                    )
    finally:
        probe.close()


def _commit_groups(
    admin: AdminClient,
    settings: Settings,
    groups: dict[str, dict[str, dict[str, int]]],
    held: dict[str, dict[int, list[int]]],
) -> list[str]:
    """Commit each group's offsets, moved into the restored topics."""
    requests = []
    for suffix, topics in groups.items():
        partitions = [
            TopicPartition(
                settings.topic(logical),
                int(p),
                new_position(held.get(logical, {}).get(int(p), []), o),
            )
            for logical, offsets in topics.items()
            for p, o in offsets.items()
        ]
        if partitions:
            requests.append(
                ConsumerGroupTopicPartitions(settings.consumer_group + suffix, partitions)
            )
    for request in requests:  # the call takes one group at a time
        futures = admin.alter_consumer_group_offsets([request], request_timeout=_TIMEOUT_S)
        for future in futures.values():
            future.result(timeout=_TIMEOUT_S)
    return [r.group_id for r in requests]
