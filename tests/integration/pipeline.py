"""Helpers for integration tests that run a real worker process against the real stack."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.codec import get_codec
from tickcast.config import Settings
from tickcast.processes import ServiceProcess


class WorkerProcess(ServiceProcess):
    """A ``tickcast worker`` child process; ``alive()`` fails with its log when it died."""

    def __init__(self, settings: Settings, log: Path, runner: str = "direct") -> None:
        super().__init__(
            settings,
            ["worker", "--metrics-port", "0", "--runner", runner],
            log,
            TICKCAST_LOG_LEVEL="INFO",
        )

    def alive(self) -> bool:
        if self.running():
            return True
        raise AssertionError(f"the worker process died; log tail:\n{self.log_tail()}")


def group_members(settings: Settings) -> set[str]:
    """The member ids of the workers' consumer group now."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    found = admin.describe_consumer_groups([settings.consumer_group])
    group = found[settings.consumer_group].result(timeout=10)
    return {member.member_id for member in group.members}


def wait_members(
    settings: Settings, count: int, alive: Callable[[], bool], timeout_s: float = 120.0
) -> None:
    """Until the group has ``count`` members."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        if len(group_members(settings)) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"{settings.consumer_group} did not reach {count} members in {timeout_s} s"
    )


def start_member(
    settings: Settings, log: Path, runner: str = "direct", timeout_s: float = 120.0
) -> WorkerProcess:
    """A new worker, returned once it is a member of the group (start-up takes 2-8 s, more
    under load: a worker stopped before it joined tests nothing of a rolling restart)."""
    known = group_members(settings)
    worker = WorkerProcess(settings, log, runner).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.alive()
        if group_members(settings) - known:
            return worker
        time.sleep(0.5)
    worker.stop()
    raise AssertionError(f"the worker did not join {settings.consumer_group} in {timeout_s} s")


def read_topic(
    settings: Settings,
    logical: str,
    codec_name: str,
    until: Callable[[list[dict[str, object]]], bool],
    timeout_s: float = 120.0,
    alive: Callable[[], bool] | None = None,
) -> list[dict[str, object]]:
    """Read a topic from the beginning until ``until(records)`` or the timeout."""
    codec = get_codec(codec_name)
    topic = settings.topic(logical)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    meta = consumer.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
    consumer.assign(parts)
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(out):
            if alive is not None and not alive():
                raise AssertionError("the worker process died")
            for message in consumer.consume(5000, timeout=0.5):
                if message.error() is None:
                    out.append(codec.decode(message.value()))
    finally:
        consumer.close()
    return out


def dedupe_features(records: list[dict[str, object]]) -> pd.DataFrame:
    """One row per (symbol, ts): what a user sees after idempotent sinks."""
    frame = pd.DataFrame(
        [(r["symbol"], r["ts"], tuple(r["values"])) for r in records],  # type: ignore[arg-type]
        columns=["symbol", "ts", "values"],
    )
    return (
        frame.drop_duplicates(["symbol", "ts"]).sort_values(["symbol", "ts"]).reset_index(drop=True)
    )
