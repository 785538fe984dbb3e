"""The real Kafka broker of the local stack, driven by every client tickcast uses.

The broker is started once per session through ``infra/kafka/kafka.sh`` when it is not up
(and left running). Each test works in a fresh topic namespace (``TICKCAST_TOPIC_PREFIX``)
and deletes its topics afterwards. These tests are the evidence for the broker version in
``infra/kafka/README.md``: confluent-kafka, aiokafka and a faust-streaming worker (a consumer
group committing offsets, a table whose changelog topic Faust creates itself) all round-trip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from streams.topics import apply_topics, kafka_health, load_topic_spec
from tickcast.config import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

KAFKA_SH = REPO_ROOT / "infra" / "kafka" / "kafka.sh"
SYMBOLS = [f"SYM{i}" for i in range(8)]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The bootstrap of a running broker, started through kafka.sh when it is down."""
    bootstrap = Settings().kafka_bootstrap
    port = bootstrap.split(",")[0].rpartition(":")[2]
    env = {**os.environ, "KAFKA_PORT": port}
    status = subprocess.run([str(KAFKA_SH), "status"], env=env, capture_output=True, text=True)
    if status.returncode != 0:
        started = subprocess.run(
            [str(KAFKA_SH), "start"], env=env, capture_output=True, text=True, timeout=600
        )
        if started.returncode != 0:
            pytest.fail(f"kafka.sh start failed: {started.stderr.strip() or started.stdout}")
    return bootstrap


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[Settings]:
    """Settings in a fresh topic namespace; the namespace's topics are deleted afterwards."""
    prefix = f"it-{uuid.uuid4().hex[:8]}-"
    yield Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        partitions=3,
        consumer_group=f"{prefix}group",
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if ours:
        for future in admin.delete_topics(ours, operation_timeout=30).values():
            future.result()


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


def _topic_config(settings: Settings, topic: str) -> dict[str, str]:
    admin = _admin(settings)  # keep the client alive until the future resolves
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {k: str(v.value) for k, v in entries.items()}


def _records(n: int) -> list[tuple[bytes, bytes]]:
    return [(SYMBOLS[i % len(SYMBOLS)].encode(), f"tick-{i}".encode()) for i in range(n)]


def _committed_total(settings: Settings, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        tps = [CTopicPartition(topic, p) for p in range(partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def test_health_reports_the_live_broker(settings: Settings) -> None:
    ok, message = kafka_health(settings, timeout=10)
    assert ok, message
    assert "1 broker(s)" in message


def test_apply_topics_is_idempotent_and_realigns_configs(settings: Settings) -> None:
    spec = load_topic_spec()
    created = apply_topics(settings)
    assert created == [settings.topic(t.name) for t in spec.topics]

    metadata = _admin(settings).list_topics(timeout=10)
    for topic in spec.topics:
        name = settings.topic(topic.name)
        want = settings.partitions if topic.per_symbol else topic.partitions
        assert len(metadata.topics[name].partitions) == want, name
        configs = _topic_config(settings, name)
        assert configs["retention.ms"] == str(topic.retention_ms), name
        assert configs["cleanup.policy"] == topic.cleanup_policy, name
        for key, value in topic.configs.items():
            assert configs[key] == value, (name, key)

    assert apply_topics(settings) == []  # the second apply changes nothing

    # Someone changes a config by hand: the next apply puts the spec's value back.
    ticks = settings.topic("ticks")
    resource = ConfigResource(
        ResourceType.TOPIC,
        ticks,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin = _admin(settings)
    admin.incremental_alter_configs([resource])[resource].result(timeout=10)
    assert _topic_config(settings, ticks)["retention.ms"] == "1000"
    assert apply_topics(settings) == [ticks]
    assert _topic_config(settings, ticks)["retention.ms"] == str(spec.get("ticks").retention_ms)
    assert apply_topics(settings) == []


def test_confluent_kafka_round_trip_with_committed_group(settings: Settings) -> None:
    apply_topics(settings)
    topic = settings.topic("ticks")
    records = _records(200)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "linger.ms": settings.linger_ms,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",  # the Java/aiokafka/Faust partitioner
        }
    )
    for key, value in records:
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": settings.consumer_group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 60
    while len(seen) < len(records) and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=1.0):
            assert msg.error() is None, msg.error()
            seen.append((msg.key(), msg.value(), msg.partition()))
    consumer.commit(asynchronous=False)
    consumer.close()

    assert sorted((k, v) for k, v, _ in seen) == sorted(records)
    # Every symbol lives on exactly one partition.
    partitions_of = {k: {p for k2, _, p in seen if k2 == k} for k, _, _ in seen}
    assert all(len(p) == 1 for p in partitions_of.values())
    # The order of a symbol's ticks is kept.
    for symbol in SYMBOLS:
        got = [v for k, v, _ in seen if k == symbol.encode()]
        assert got == [v for k, v in records if k == symbol.encode()]
    committed = _committed_total(settings, settings.consumer_group, topic, settings.partitions)
    assert committed == len(records)


async def test_aiokafka_round_trip_commits_and_matches_confluent_partitioning(
    settings: Settings,
) -> None:
    apply_topics(settings)
    topic = settings.topic("features")
    records = _records(120)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=settings.linger_ms,
        enable_idempotence=True,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        metas = [await f for f in futures]
    finally:
        await producer.stop()
    aiokafka_partition = {k: m.partition for (k, _), m in zip(records, metas, strict=True)}

    # confluent-kafka with murmur2_random puts each key where aiokafka (and Faust) do.
    placed: dict[bytes, int] = {}
    confluent = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"}
    )
    for symbol in SYMBOLS:
        confluent.produce(
            settings.topic("ticks"),
            key=symbol.encode(),
            value=b"x",
            on_delivery=lambda err, msg: placed.__setitem__(msg.key(), msg.partition()),
        )
    assert confluent.flush(30) == 0
    assert placed == aiokafka_partition

    group = f"{settings.consumer_group}-aio"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < len(records) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            seen.extend((m.key, m.value) for msgs in batches.values() for m in msgs)
        await consumer.commit()
        committed = {
            p: await consumer.committed(TopicPartition(topic, p))
            for p in range(settings.partitions)
        }
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(records)
    assert sum(c or 0 for c in committed.values()) == len(records)

    # The same group resumes from its commit: nothing is read again.
    again = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await again.start()
    try:
        batches = await again.getmany(timeout_ms=3000)
        assert sum(len(m) for m in batches.values()) == 0
        assert again.assignment(), "the resumed consumer joined the group"
    finally:
        await again.stop()


FAUST_APP = textwrap.dedent(
    """
    import os

    import faust

    PREFIX = os.environ["TC_PREFIX"]
    app = faust.App(
        PREFIX + "faust-probe",
        broker="kafka://" + os.environ["TC_BOOTSTRAP"],
        web_enabled=False,
        store="memory://",
        topic_partitions=int(os.environ["TC_PARTITIONS"]),
        topic_replication_factor=1,
        broker_commit_every=10,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
    )
    ticks = app.topic(PREFIX + "ticks", key_serializer="raw", value_serializer="raw")
    out = app.topic(PREFIX + "predictions", key_serializer="raw", value_serializer="raw")
    counts = app.Table("counts", default=int)


    @app.agent(ticks)
    async def count(stream):
        async for event in stream.events():
            counts[event.key] += 1
            await out.send(key=event.key, value=b"%d" % counts[event.key])
    """
)


def test_faust_worker_counts_in_a_table_and_commits(settings: Settings, tmp_path: Path) -> None:
    apply_topics(settings)
    records = _records(80)
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"}
    )
    for key, value in records:
        producer.produce(settings.topic("ticks"), value=value, key=key)
    assert producer.flush(30) == 0

    (tmp_path / "probe_app.py").write_text(FAUST_APP)
    env = {
        **os.environ,
        "TC_PREFIX": settings.topic_prefix,
        "TC_BOOTSTRAP": settings.kafka_bootstrap,
        "TC_PARTITIONS": str(settings.partitions),
        "PYTHONPATH": str(tmp_path),
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "probe_app", "worker", "-l", "info"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    app_id = f"{settings.topic_prefix}faust-probe"
    try:
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"{settings.consumer_group}-out",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([settings.topic("predictions")])
        outputs: list[tuple[bytes, int]] = []
        deadline = time.monotonic() + 120
        while len(outputs) < len(records) and time.monotonic() < deadline:
            assert worker.poll() is None, log_path.read_text()[-3000:]
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, msg.error()
                outputs.append((msg.key(), int(msg.value())))
        consumer.close()
        assert len(outputs) == len(records), log_path.read_text()[-3000:]
        per_symbol = len(records) // len(SYMBOLS)
        for symbol in SYMBOLS:
            assert [c for k, c in outputs if k == symbol.encode()] == list(range(1, per_symbol + 1))

        # The worker's consumer group commits every offset it processed.
        committed = 0
        deadline = time.monotonic() + 60
        while committed < len(records) and time.monotonic() < deadline:
            committed = _committed_total(
                settings, app_id, settings.topic("ticks"), settings.partitions
            )
            time.sleep(0.5)
        assert committed == len(records)

        # Faust created its table's changelog topic itself (CreateTopics through aiokafka).
        changelog = f"{app_id}-counts-changelog"
        metadata = _admin(settings).list_topics(timeout=10)
        assert len(metadata.topics[changelog].partitions) == settings.partitions
        assert _topic_config(settings, changelog)["cleanup.policy"] == "compact"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    log_text = log_path.read_text()
    assert "UNSUPPORTED_VERSION" not in log_text.upper().replace(" ", "_")
