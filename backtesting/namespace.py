"""Namespaces: everything one deployment, demo, test or backtest owns, and how to reset it.

A namespace is the tuple (topic prefix, consumer group, Redis key prefix, ClickHouse
database, Faust data folder) of a :class:`Settings`. Resetting one never touches another:
it refuses the empty topic prefix, which is production's.
"""

from __future__ import annotations

import shutil
import time

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from tickcast.config import Settings
from tickcast.errors import ConfigError, DependencyError


def reset_namespace(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """Delete the namespace's topics, consumer groups, Redis keys and local stream state."""
    prefix = settings.topic_prefix
    if not prefix or not settings.redis_key_prefix:
        raise ConfigError("refusing to reset a namespace without topic and key prefixes")
    if settings.consumer_group == Settings.model_fields["consumer_group"].default:
        # its groups and Faust topics are named <group>-*: with the production default that
        # is every other namespace's too (tickcast-demo, tickcast-clickhouse-sink, ...)
        raise ConfigError(
            f"refusing to reset a namespace with the default consumer group "
            f"{settings.consumer_group!r}: give it its own (TICKCAST_CONSUMER_GROUP)"
        )
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    group = settings.consumer_group
    faust_internal = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{group}-")]
    doomed = topics + faust_internal
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=timeout_s).values():
            future.result()
    groups = [g.group_id for g in admin.list_consumer_groups().result(timeout_s).valid]
    mine = [g for g in groups if g == group or g.startswith(f"{group}-")]
    _delete_groups(admin, mine, timeout_s)
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.unlink(*keys[start : start + 1000])
    shutil.rmtree(settings.data_dir / "faust" / group, ignore_errors=True)
    _wait_deleted(admin, doomed, timeout_s)
    return {"topics": len(doomed), "groups": len(mine), "keys": len(keys)}


def _delete_groups(admin: AdminClient, groups: list[str], timeout_s: float) -> None:
    """Delete consumer groups, waiting for members of a just-stopped process to leave."""
    deadline = time.monotonic() + max(timeout_s, 60.0)
    left = list(groups)
    while left:
        busy = []
        for group, future in admin.delete_consumer_groups(left, request_timeout=10).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                    continue
                if exc.args[0].code() != KafkaError.NON_EMPTY_GROUP:
                    raise
                busy.append(group)
        if busy and time.monotonic() > deadline:
            raise DependencyError(
                "kafka", f"consumer groups {busy} still have members", "stop their workers first"
            )
        left = busy
        if left:
            time.sleep(1.0)


def _wait_deleted(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = set(topics) & set(admin.list_topics(timeout=10).topics)
        if not left:
            return
        time.sleep(0.2)
