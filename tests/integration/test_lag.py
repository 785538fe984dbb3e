"""Consumer lag against the real broker: produce N, consume and commit k, expect N − k."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from monitoring.lag import collect_lag, run_lag_exporter
from tickcast.config import REPO_ROOT, Settings
from tickcast.metrics import Metrics

pytestmark = pytest.mark.integration

KAFKA_SH = REPO_ROOT / "infra" / "kafka" / "kafka.sh"
N, K = 50, 17


@pytest.fixture(scope="module")
def bootstrap() -> str:
    """A running broker's bootstrap (started through kafka.sh when down; never skipped)."""
    servers = Settings().kafka_bootstrap
    env = {**os.environ, "KAFKA_PORT": servers.split(",")[0].rpartition(":")[2]}
    status = subprocess.run([str(KAFKA_SH), "status"], env=env, capture_output=True, text=True)
    if status.returncode != 0:
        started = subprocess.run(
            [str(KAFKA_SH), "start"], env=env, capture_output=True, text=True, timeout=600
        )
        if started.returncode != 0:
            pytest.fail(f"kafka.sh start failed: {started.stderr.strip() or started.stdout}")
    return servers


@pytest.fixture
def lagging_group(bootstrap: str, namespace: str) -> Iterator[tuple[str, str]]:
    """A fresh topic with N records and a group that consumed and committed the first K."""
    topic, group = f"{namespace}.lag", f"{namespace}-lag"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(N):
        producer.produce(topic, key=b"SYM", value=str(i).encode(), partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "max.poll.interval.ms": 60000}
    )  # fmt: skip
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < K and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            seen.append(msg)
    assert len(seen) == K, f"consumed {len(seen)} of {K}"
    consumer.commit(message=seen[-1], asynchronous=False)
    consumer.close()
    try:
        yield topic, group
    finally:
        admin.delete_consumer_groups([group])[group].exception(30)
        admin.delete_topics([topic])[topic].exception(30)


def test_collect_lag_reports_n_minus_k(bootstrap: str, lagging_group: tuple[str, str]) -> None:
    topic, group = lagging_group
    rows = collect_lag(bootstrap, [group])
    assert [(r.group, r.topic, r.partition, r.committed, r.end, r.lag) for r in rows] == [
        (group, topic, 0, K, N, N - K)
    ]
    everyone = collect_lag(bootstrap, None)
    assert any(r.group == group and r.lag == N - K for r in everyone)
    assert collect_lag(bootstrap, [f"{group}-never-existed"]) == []


def test_exporter_serves_the_lag(bootstrap: str, lagging_group: tuple[str, str]) -> None:
    topic, group = lagging_group
    metrics, stop, ready = Metrics(process=False), threading.Event(), threading.Event()
    ports: list[int] = []

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    thread = threading.Thread(
        target=run_lag_exporter,
        args=(bootstrap, [group]),
        kwargs={"port": 0, "addr": "127.0.0.1", "interval_s": 0.5, "metrics": metrics,
                "stop": stop, "on_ready": on_ready},
        daemon=True,
    )  # fmt: skip
    thread.start()
    try:
        assert ready.wait(30)
        wanted = {"group": group, "topic": topic, "partition": "0"}
        value = None
        deadline = time.monotonic() + 30
        while value is None and time.monotonic() < deadline:
            body = httpx.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=5).text
            value = next(
                (s.value for f in text_string_to_metric_families(body) for s in f.samples
                 if s.name == "kafka_consumergroup_lag" and s.labels == wanted),
                None,
            )  # fmt: skip
            if value is None:
                time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    assert value == N - K
    assert metrics.value("tickcast_dependency_up", component="kafka") == 1
