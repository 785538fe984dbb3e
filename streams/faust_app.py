"""The Faust application: built from Settings by a factory, never at import time."""

from __future__ import annotations

from typing import Any

import faust

from tickcast.config import Settings


def faust_app(settings: Settings, **overrides: Any) -> faust.App:
    """A Faust app for this deployment (app id = consumer group).

    Stage state lives in changelog topics written per checkpoint (agents.state_store), so
    the app declares no Faust tables and needs no RocksDB.
    """
    datadir = settings.data_dir / "faust" / settings.consumer_group
    datadir.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        "store": "memory://",
        "datadir": str(datadir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        "producer_linger_ms": settings.linger_ms,
        "broker_commit_every": 10_000,
        "broker_commit_interval": 1.0,
        "table_standby_replicas": 0,
        # Fast failover (streams.consumers says why): a dead worker's partitions move in
        # seconds, not after librdkafka's/aiokafka's default session time-out.
        "broker_session_timeout": settings.worker_session_timeout_ms / 1000,
        "broker_heartbeat_interval": settings.worker_heartbeat_ms / 1000,
        "processing_guarantee": "at_least_once",
        # Events are acked at checkpoints, not one by one: a rebalance must not wait for
        # acks of events whose state is not yet durable (they are replayed instead).
        "stream_wait_empty": False,
    }
    options.update(overrides)
    return faust.App(settings.consumer_group, **options)
