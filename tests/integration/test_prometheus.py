"""A real Prometheus scraping a real worker and the lag exporter on the real broker.

What it proves: the worker's counters and latency histogram arrive in Prometheus with the right
values, dead letters are counted by reason, the lag exporter's series are there, the project's
lag alert expression (read from monitoring/alerts.yml) fires on planted, growing lag and not on
flat lag, and TargetDown fires when the worker goes away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devtools.prometheus_runner import ALERTS, PrometheusRunner, free_port
from monitoring.lag import run_lag_exporter
from monitoring.summary import summary
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import publish, tick_records
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.metrics import Metrics
from tickcast.processes import ServiceProcess

pytestmark = pytest.mark.integration

PLANTED, COMMITTED, GROWTH = 1500, 10, 600


def _bars(n_symbols: int, n_bars: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_symbols):
        close = 40.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
        open_ = close * np.exp(rng.normal(0, 0.002, n_bars))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n_bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n_bars))
        for i in range(n_bars):
            rows.append((f"S{s:03d}", 1_600_000_000_000 + i * 60_000, open_[i], high[i], low[i],
                         close[i], float(rng.integers(10_000, 100_000))))  # fmt: skip
    frame = pd.DataFrame(rows, columns=["symbol", "ts_ms", "open", "high", "low", "close",
                                        "volume"])  # fmt: skip
    return frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def _plant_bad_ticks(settings: Settings, frame: pd.DataFrame) -> dict[str, int]:
    """One bad record per reason, after the good ones; returns ``{reason: count}``."""
    codec = get_codec("Tick")
    good = next(tick_records(frame.iloc[:1], "prom"))
    future = 1_700_000_000_000
    bad = [
        (b"S000", b"not avro at all", "UNDECODABLE"),
        (b"S001", codec.encode({**good, "symbol": "S001", "ts": future, "close": float("nan")}),
         "BAD_PRICE"),
        (b"S002", codec.encode({**good, "symbol": "S002", "ts": future, "high": 1.0, "low": 2.0}),
         "BAD_RANGE"),
        (b"S003", codec.encode({**good, "symbol": "S003", "ts": 1_600_000_000_000}),
         "OUT_OF_ORDER"),
        (b"S004", codec.encode({**good, "symbol": "S004", "ts": future, "volume": -5.0}),
         "NEGATIVE_VOLUME"),
    ]  # fmt: skip
    producer = BatchProducer(settings)
    for key, value, _ in bad:
        producer.produce(settings.topic("ticks"), key, value)
    producer.flush()
    return {reason: 1 for _, _, reason in bad}


def _produce(settings: Settings, topic: str, n: int) -> None:
    producer = BatchProducer(settings)
    for i in range(n):
        producer.produce(topic, b"K", str(i).encode(), partition=0)
    producer.flush()


@pytest.fixture
def stalled_group(settings: Settings) -> Iterator[tuple[str, str]]:
    """A topic with PLANTED records and a group that committed offset COMMITTED, then stopped."""
    topic, group = settings.topic("stalled"), f"{settings.consumer_group}-stalled"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    _produce(settings, topic, PLANTED)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})  # fmt: skip
    consumer.commit(offsets=[TopicPartition(topic, 0, COMMITTED)], asynchronous=False)
    consumer.close()
    try:
        yield topic, group
    finally:
        admin.delete_consumer_groups([group])[group].exception(30)
        admin.delete_topics([topic])[topic].exception(30)


@pytest.fixture
def lag_exporter(settings: Settings, stalled_group: tuple[str, str]) -> Iterator[int]:
    """The lag exporter in a thread, for the worker's group and the stalled one; its port."""
    stop, ready = threading.Event(), threading.Event()
    ports: list[int] = []

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    thread = threading.Thread(
        target=run_lag_exporter,
        args=(settings.kafka_bootstrap, [settings.consumer_group, stalled_group[1]]),
        kwargs={"port": 0, "addr": "127.0.0.1", "interval_s": 0.5,
                "metrics": Metrics(process=False), "stop": stop, "on_ready": on_ready},
        daemon=True,
    )  # fmt: skip
    thread.start()
    assert ready.wait(30), "the lag exporter did not start"
    try:
        yield ports[0]
    finally:
        stop.set()
        thread.join(30)


def _alert_expr(name: str) -> str:
    doc = yaml.safe_load(ALERTS.read_text())
    return next(r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == name)


def _by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): r["value"] for r in result}


def _firing(prom: PrometheusRunner, alert: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a for a in prom.alerts()
        if a["labels"]["alertname"] == alert and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]  # fmt: skip


def test_prometheus_sees_worker_metrics_lag_and_alerts(
    settings: Settings,
    stalled_group: tuple[str, str],
    lag_exporter: int,
    tmp_path: Path,
) -> None:
    apply_topics(settings)
    frame = _bars(6, 60)
    publish(settings, frame, "prom")
    reasons = _plant_bad_ticks(settings, frame)
    n_ticks = len(frame) + sum(reasons.values())
    ticks, features = settings.topic("ticks"), settings.topic("features")
    stalled_topic, stalled = stalled_group
    group = settings.consumer_group

    worker_port = free_port()
    worker = ServiceProcess(
        settings, ["worker", "--metrics-port", str(worker_port)], tmp_path / "worker.log",
        TICKCAST_LOG_LEVEL="INFO",
    ).start()  # fmt: skip
    targets = {"tickcast-worker": f"127.0.0.1:{worker_port}",
               "tickcast-lag": f"127.0.0.1:{lag_exporter}"}  # fmt: skip
    try:
        with PrometheusRunner(targets, rule_for="0s", workdir=tmp_path / "prom") as prom:
            up = prom.wait_for("up", lambda r: len(r) == 2 and all(x["value"] == 1 for x in r),
                               timeout_s=90)  # fmt: skip
            assert _by(up, "job") == {"tickcast-worker": 1.0, "tickcast-lag": 1.0}, (
                worker.log_tail()
            )

            # every tick (good and bad) consumed once, every good one produced a feature vector
            consumed = f'tickcast_events_total{{topic="{ticks}",direction="in"}}'
            got = prom.wait_for(consumed, lambda r: bool(r) and r[0]["value"] >= n_ticks,
                                timeout_s=180)  # fmt: skip
            assert got, worker.log_tail()
            assert got[0]["value"] == n_ticks, worker.log_tail()
            assert prom.value(f'tickcast_events_total{{topic="{features}",direction="out"}}') == (
                len(frame)
            )

            # dead letters by reason
            dead = prom.query(f'tickcast_dead_letters_total{{topic="{ticks}"}}')
            assert _by(dead, "reason") == {r: float(n) for r, n in reasons.items()}

            # latency histogram: sane p99, and the summary computes the very same number
            assert prom.query('tickcast_stage_latency_ms_bucket{stage="features",le="+Inf"}')
            count_expr = 'tickcast_stage_latency_ms_count{stage="features"}'
            text, same = "", False
            for _ in range(20):  # the worker is idle by now: wait for a scrape of the same page
                text = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).text
                direct = summary(settings, text, lag=[])["stages"]["features"]["batches"]
                last = prom.wait_for(count_expr, lambda r, d=direct: bool(r) and r[0]["value"] == d,
                                     timeout_s=5)  # fmt: skip
                same = bool(last) and last[0]["value"] == direct
                if same:
                    break
            assert same, "Prometheus never scraped the page the summary read"
            p99 = prom.value(
                "histogram_quantile(0.99, sum by (le) (tickcast_stage_latency_ms_bucket"
                '{stage="features"}))'
            )
            assert p99 is not None
            assert 0 < p99 < 10_000
            assert summary(settings, text, lag=[])["stages"]["features"]["p99_ms"] == (
                pytest.approx(p99, rel=1e-12)
            )

            # the exporter's lag: the worker's group catches up to 0 on ticks
            caught_up = prom.wait_for(
                f'sum(kafka_consumergroup_lag{{group="{group}",topic="{ticks}"}})',
                lambda r: bool(r) and r[0]["value"] == 0, timeout_s=120,
            )  # fmt: skip
            assert caught_up
            assert caught_up[0]["value"] == 0
            planted = prom.wait_for(f'kafka_consumergroup_lag{{group="{stalled}"}}', timeout_s=30)
            assert [(r["metric"]["topic"], r["value"]) for r in planted] == [
                (stalled_topic, float(PLANTED - COMMITTED))
            ]

            # the lag alert's own expression: quiet on flat lag, non-empty once it grows
            expr = _alert_expr("KafkaConsumerLagGrowing")
            prom.wait_for(
                f'count_over_time(kafka_consumergroup_lag{{group="{stalled}"}}[1m])',
                lambda r: bool(r) and r[0]["value"] >= 3, timeout_s=30,
            )  # fmt: skip
            assert stalled not in _by(prom.query(expr), "group")
            _produce(settings, stalled_topic, GROWTH)
            growing = prom.wait_for(expr, lambda r: stalled in _by(r, "group"), timeout_s=60)
            assert _by(growing, "group") == {stalled: float(PLANTED - COMMITTED + GROWTH)}
            firing = _wait_alert(prom, "KafkaConsumerLagGrowing", group=stalled)
            assert firing[0]["labels"]["severity"] == "warning"
            assert firing[0]["labels"]["topic"] == stalled_topic

            # the worker goes away: TargetDown fires for its job
            worker.stop()
            down = _wait_alert(prom, "TargetDown", job="tickcast-worker")
            assert down[0]["labels"]["severity"] == "critical"
    finally:
        worker.stop()


def _wait_alert(
    prom: PrometheusRunner, alert: str, timeout_s: float = 60.0, **labels: str
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    found = _firing(prom, alert, **labels)
    while not found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = _firing(prom, alert, **labels)
    assert found, f"{alert} {labels} never fired; active alerts: {prom.alerts()}"
    return found


def test_runner_reports_a_broken_config_with_prometheus_own_words(tmp_path: Path) -> None:
    from tickcast.errors import DependencyError

    bad_rules = tmp_path / "bad.yml"
    bad_rules.write_text("groups: [{name: g, rules: [{alert: A, expr: 'up =='}]}]")
    runner = PrometheusRunner({"x": "127.0.0.1:1"}, rules=bad_rules, workdir=tmp_path / "p")
    with pytest.raises(DependencyError, match="could not parse expression"):
        runner.start(timeout_s=30)
    assert not runner.running()


def test_prometheus_scrapes_the_api(settings: Settings, tmp_path: Path) -> None:
    """The API's /metrics (uvicorn factory; no `tickcast serve` yet) and its HTTP histogram."""
    import subprocess
    import sys

    from tickcast.config import REPO_ROOT
    from tickcast.processes import child_env

    port = free_port()
    log = tmp_path / "api.log"
    with log.open("ab") as handle:
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "serving.main:create_app",
             "--host", "127.0.0.1", "--port", str(port)],
            env=child_env(settings), cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with PrometheusRunner({"tickcast-api": f"127.0.0.1:{port}"}, rule_for="0s") as prom:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            for _ in range(5):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            up = prom.wait_for('up{job="tickcast-api"} == 1', timeout_s=30)
            assert up, log.read_text(errors="replace")[-2000:]
            served = prom.wait_for(
                'sum(tickcast_http_request_ms_count{route="/healthz"})',
                lambda r: bool(r) and r[0]["value"] >= 5, timeout_s=30,
            )  # fmt: skip
            assert served
            assert served[0]["value"] >= 5
    finally:
        api.terminate()
        api.wait(timeout=30)
