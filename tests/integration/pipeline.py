"""Helpers for integration tests that run a real worker process against the real stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from streams.codec import get_codec
from tickcast.config import Settings

REPO = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TICKCAST_{name.upper()}"] = str(value)
    env["TICKCAST_LOG_LEVEL"] = "WARNING"
    return env


class WorkerProcess:
    """A ``tickcast worker`` child process."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickcast.cli", "worker", "--metrics-port", "0"],
            env=settings_env(self.settings),
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is None:
            return True
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        raise AssertionError(f"the worker process died; log tail:\n{tail}")


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
