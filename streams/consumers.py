"""The one place a confluent-kafka consumer's configuration is written.

Group members (the worker, the drift process) get the failover settings of
:class:`~tickcast.config.Settings`: a 6 s session time-out with a 1.5 s heartbeat instead of
librdkafka's 45 s / 3 s, so a SIGKILLed worker's partitions move to a survivor in seconds,
not a minute; optional static membership (``group.instance.id``) so a worker restarted
within the session time-out keeps its partitions without a rebalance. Offsets are never
committed automatically: a runner commits what its checkpoint made durable.
"""

from __future__ import annotations

from confluent_kafka import Consumer

from tickcast.config import Settings


def consumer_config(settings: Settings, group: str, **extra: object) -> dict[str, object]:
    """librdkafka settings of a tickcast consumer in ``group``."""
    config: dict[str, object] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.worker_session_timeout_ms,
        "heartbeat.interval.ms": settings.worker_heartbeat_ms,
        "max.poll.interval.ms": settings.worker_max_poll_interval_ms,
    }
    config.update(extra)
    return config


def group_consumer(settings: Settings, group: str, **extra: object) -> Consumer:
    """A consumer in ``group`` (static membership when ``worker_instance_id`` is set)."""
    if settings.worker_instance_id and "group.instance.id" not in extra:
        extra["group.instance.id"] = settings.worker_instance_id
    return Consumer(consumer_config(settings, group, **extra))


def reader(settings: Settings, group: str, **extra: object) -> Consumer:
    """A consumer that reads assigned partitions (no group membership is used)."""
    return Consumer(consumer_config(settings, group, **extra))


def offsets_reader(bootstrap: str, group: str, **extra: object) -> Consumer:
    """A consumer of ``group`` that never joins it: it only reads the group's committed
    offsets (the lag exporter's reader; no failover settings, no subscription)."""
    return Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **extra}
    )
