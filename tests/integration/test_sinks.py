"""ClickHouse sink on the real broker and chDB: exactly-once under outage, history reads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import clickhouse_connect
import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition

from sinks.clickhouse import connect
from sinks.clickhouse_sink import ClickHouseConnector, ClickHouseSink, SinkBatch
from sinks.history import accuracy_by_model_day, history_page, psi_by_feature_week
from sinks.read_endpoint import ReadEndpoint, open_reader, read_token
from sinks.sink_process import SinkRunner
from sinks.tables import DRIFT, OUTCOMES, PREDICTIONS, prepare_tables
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.topics import apply_topics
from tickcast.config import Settings

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000
DAY = 86_400_000


def prediction(i: int, model: str = "xgb") -> dict[str, Any]:
    return {
        "symbol": f"S{i % 7}", "ts": T0 + (i // 7) * 60_000, "horizon": 5,
        "prob_up": (i % 100) / 100, "expected_return": 0.001 * (i % 5),
        "model_name": model, "model_version": "3", "role": "CHAMPION",
        "feature_set_version": "v1", "scoring_latency_ms": 1.0, "correlation_id": f"c{i}",
        "produced_at": T0 + i,
    }  # fmt: skip


def outcome(i: int, model: str = "xgb") -> dict[str, Any]:
    p = prediction(i, model)
    return {
        **{k: p[k] for k in ("symbol", "ts", "horizon", "model_name", "model_version", "role",
                             "prob_up", "expected_return")},
        "realized_return": 0.01 if i % 3 else -0.01, "realized_ts": p["ts"] + 300_000,
        "hit": bool(i % 3), "loss": 0.5 + (i % 3) / 10, "strategy_return": 0.001 * (i % 4),
        "feature_set_version": "v1", "correlation_id": None,
    }  # fmt: skip


def produce(settings: Settings, topic: str, schema: str, records: list[dict], **kw: Any) -> None:
    producer = BatchProducer(settings)
    codec = get_codec(schema)
    for r in records:
        producer.produce(settings.topic(topic), r["symbol"].encode(), codec.encode(r), **kw)
    producer.flush()


def scalar(client: Any, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


class Outage:
    """A client factory whose clients fail every INSERT while ``down`` is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.down = False
        self.failed = 0
        self.connects = 0

    def __call__(self) -> Any:
        self.connects += 1
        real = connect(self.settings)
        outage = self

        class Flaky:
            def insert(self, *args: Any, **kwargs: Any) -> Any:
                if outage.down:
                    outage.failed += 1
                    raise ConnectionError("simulated ClickHouse outage")
                return real.insert(*args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        return Flaky()


def step_until(runner: SinkRunner, done: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        runner.step(0.1)


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    probe = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "probe"})
    out = {}
    try:
        for t in topics:
            real = settings.topic(t)
            for p in probe.list_topics(real, timeout=10).topics[real].partitions:
                out[(real, p)] = probe.get_watermark_offsets(TopicPartition(real, p), 10)[1]
    finally:
        probe.close()
    return out


def test_exactly_once_through_an_outage(settings: Settings) -> None:
    settings = settings.model_copy(
        update={
            "sink_batch_rows": 300, "sink_batch_interval_s": 0.2,
            "sink_max_buffer_rows": 600, "sink_retry_max_s": 0.3, "sink_run_id": "",
        }
    )  # fmt: skip
    apply_topics(settings)
    n = 2000
    produce(settings, "predictions", "Prediction", [prediction(i) for i in range(n)])
    produce(settings, "predictions", "Prediction", [prediction(i) for i in range(0, n, 4)])
    produce(settings, "outcomes", "Outcome", [outcome(i) for i in range(n // 2)])
    produce(
        settings,
        "outcomes",
        "Outcome",
        [outcome(i) for i in range(5)],
        headers=[("run_id", b"bt-1")],
    )
    BatchProducer(settings).produce(settings.topic("predictions"), b"S0", b"not avro")

    outage = Outage(settings)
    outage.down = True
    runner = SinkRunner(
        settings, topics=["predictions", "outcomes"],
        connector=ClickHouseConnector(settings, factory=outage),
    )  # fmt: skip
    runner.start()
    try:
        # ClickHouse down: buffers fill up to their bound, then the topics are paused.
        step_until(runner, lambda: runner.paused == set(runner.sinks))
        consumed_when_full = runner.consumed
        high_water = 0
        for _ in range(30):
            runner.step(0.05)
            high_water = max(high_water, *(s.pending_rows for s in runner.sinks.values()))
        assert runner.consumed == consumed_when_full  # no consumption while paused
        assert high_water <= settings.sink_max_buffer_rows + settings.sink_batch_rows
        assert outage.failed >= 2
        assert runner.committed_batches == 0
        # Upstream keeps working during the outage.
        produce(settings, "predictions", "Prediction", [prediction(i) for i in range(n, n + 100)])

        outage.down = False
        ends = end_offsets(settings, ["predictions", "outcomes"])
        tps = [TopicPartition(t, p) for (t, p) in ends]

        def all_committed() -> bool:
            got = runner.consumer.committed(tps, timeout=10)
            return all(max(tp.offset, 0) == ends[(tp.topic, tp.partition)] for tp in got)

        step_until(runner, all_committed)
    finally:
        runner.close()

    client = connect(settings)
    db = settings.clickhouse_database
    assert scalar(client, f"SELECT count() FROM {db}.predictions FINAL") == n + 100
    assert scalar(client, f"SELECT count() FROM {db}.outcomes FINAL WHERE run_id = ''") == n // 2
    assert scalar(client, f"SELECT count() FROM {db}.outcomes FINAL WHERE run_id = 'bt-1'") == 5
    keys = client.query(
        f"SELECT symbol, toUnixTimestamp64Milli(ts), correlation_id FROM {db}.predictions FINAL"
    ).result_rows
    expected = {
        (p["symbol"], p["ts"], p["correlation_id"]) for p in map(prediction, range(n + 100))
    }
    assert set(keys) == expected
    assert len(keys) == len(expected)

    # A second consumer group re-reads everything (a crash before commit looks like this):
    # the raw table holds repeats, what users see (FINAL) does not change.
    again = settings.model_copy(update={"consumer_group": settings.consumer_group + "-again"})
    runner2 = SinkRunner(again, topics=["predictions"])
    runner2.start()
    try:
        step_until(
            runner2,
            lambda: runner2.sinks[again.topic("predictions")].rows_written >= n + n // 4 + 100,
        )
    finally:
        runner2.close()
    # (the raw count is not asserted: background merges collapse repeats at any time)
    assert runner2.sinks[again.topic("predictions")].rows_written == n + n // 4 + 100
    assert scalar(client, f"SELECT count() FROM {db}.predictions FINAL") == n + 100


def _insert(settings: Settings, mapping: Any, rows: list[tuple]) -> None:
    sink = ClickHouseSink(settings, mapping, ClickHouseConnector(settings))
    sink.write(SinkBatch(rows=rows))


def test_history_pagination_accuracy_and_psi(settings: Settings) -> None:
    n = 150
    preds = [prediction(i, m) for i in range(n) for m in ("xgb", "lgbm")]
    _insert(settings, PREDICTIONS, [PREDICTIONS.to_row(p) for p in preds])
    _insert(settings, PREDICTIONS, [PREDICTIONS.to_row(p) for p in preds[:40]])  # retried batch
    outs = [outcome(i, m) for i in range(0, n, 2) for m in ("xgb", "lgbm")]
    _insert(settings, OUTCOMES, [OUTCOMES.to_row(o) for o in outs])
    client = connect(settings)
    db = settings.clickhouse_database

    def key(r: dict) -> tuple:
        return (r["ts_ms"], r["model_name"], r["model_version"], r["horizon"])

    mine = sorted(
        (p for p in preds if p["symbol"] == "S3"), key=lambda p: (p["ts"], p["model_name"])
    )
    rows, cursor, pages = [], None, 0
    while True:
        page = history_page(
            client, db, "S3", T0, T0 + DAY, after=cursor, limit=7, with_outcomes=True
        )
        rows += page.rows
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == -(-len(mine) // 7) or pages == len(mine) // 7 + 1
    assert [key(r) for r in rows] == sorted(key(r) for r in rows)
    assert len({key(r) for r in rows}) == len(rows) == len(mine)
    assert [r["correlation_id"] for r in rows] == [p["correlation_id"] for p in mine]
    with_outcome = [r for r in rows if r["realized_return"] is not None]
    assert len(with_outcome) == sum(1 for p in mine if int(p["correlation_id"][1:]) % 2 == 0)
    assert all(r["hit"] is None for r in rows if r["realized_return"] is None)

    only_lgbm = history_page(client, db, "S3", T0, T0 + DAY, model_name="lgbm", kind="outcomes")
    assert only_lgbm.next_cursor is None
    assert {r["model_name"] for r in only_lgbm.rows} == {"lgbm"}

    got = pd.DataFrame(accuracy_by_model_day(client, db, T0 - DAY, T0 + 2 * DAY))
    frame = pd.DataFrame(outs)
    frame["day"] = pd.to_datetime(frame["ts"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    want = (
        frame.groupby(["model_name", "model_version", "day"])
        .agg(
            n=("hit", "size"), accuracy=("hit", "mean"), strategy_return=("strategy_return", "sum")
        )
        .reset_index()
    )
    merged = got.merge(want, on=["model_name", "model_version", "day"], suffixes=("", "_want"))
    assert len(merged) == len(want) == len(got)
    assert (merged["n"] == merged["n_want"]).all()
    assert merged["accuracy"].to_numpy() == pytest.approx(merged["accuracy_want"].to_numpy())

    drift_rows = [
        {"feature": f, "window_start": T0 + d * DAY, "window_end": T0 + (d + 1) * DAY,
         "psi": 0.05 * (d + 1) * (2 if f == "rsi_14" else 1), "ks": 0.1, "n": 100,
         "reference_model_name": "stream", "reference_model_version": "w",
         "feature_set_version": "v1", "level": "OK", "symbol": None, "ks_pvalue": None}
        for f in ("rsi_14", "sma_5") for d in range(10)
    ]  # fmt: skip
    _insert(settings, DRIFT, [DRIFT.to_row(r) for r in drift_rows + drift_rows[:3]])
    weekly = pd.DataFrame(psi_by_feature_week(client, db, T0 - 7 * DAY, T0 + 30 * DAY))
    frame = pd.DataFrame(drift_rows)
    ws = pd.to_datetime(frame["window_start"], unit="ms", utc=True)
    frame["week"] = (ws.dt.normalize() - pd.to_timedelta(ws.dt.weekday, unit="D")).dt.strftime(
        "%Y-%m-%d"
    )
    want = frame.groupby(["feature", "week"]).agg(windows=("psi", "size"), mean_psi=("psi", "mean"))
    merged = weekly.merge(want.reset_index(), on=["feature", "week"], suffixes=("", "_want"))
    assert len(merged) == len(weekly) == len(want)
    assert (merged["windows"] == merged["windows_want"]).all()
    assert merged["mean_psi"].to_numpy() == pytest.approx(merged["mean_psi_want"].to_numpy())


def test_second_process_reads_through_the_endpoint_not_the_engine(settings: Settings) -> None:
    prepare_tables(connect(settings), settings)
    _insert(settings, PREDICTIONS, [PREDICTIONS.to_row(prediction(i)) for i in range(30)])
    holder = connect(settings)  # this process owns the chDB engine
    db = settings.clickhouse_database
    direct = subprocess.run(
        [sys.executable, "-c",
         "import sys, clickhouse_connect\n"
         f"clickhouse_connect.get_client(dsn={settings.clickhouse!r})"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert direct.returncode != 0
    assert "lock" in direct.stderr.lower() or "EmbeddedServer" in direct.stderr

    endpoint = ReadEndpoint(settings).start()
    try:
        # the read token travels in the environment (not argv, which `ps` shows)
        code = (
            "import os, clickhouse_connect\n"
            f"c = clickhouse_connect.get_client(dsn={endpoint.url!r}, compress=False, "
            "access_token=os.environ['READ_TOKEN'])\n"
            f"print(c.query('SELECT count() FROM {db}.predictions FINAL').result_rows[0][0])\n"
        )
        env = {**os.environ, "READ_TOKEN": read_token(settings)}
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
        )
        assert other.returncode == 0, other.stderr[-2000:]
        assert other.stdout.strip().splitlines()[-1] == "30"

        reader = open_reader(settings, url=endpoint.url)
        page = history_page(reader, db, "S1", T0, T0 + DAY, limit=2)
        assert len(page.rows) == 2
        assert page.next_cursor is not None
        assert page.rows == history_page(holder, db, "S1", T0, T0 + DAY, limit=2).rows
        with pytest.raises(Exception, match="read-only"):
            reader.command(f"DROP TABLE {db}.predictions")
        assert scalar(holder, f"SELECT count() FROM {db}.predictions FINAL") == 30
    finally:
        endpoint.close()


def test_retention_follows_settings(settings: Settings) -> None:
    client = connect(settings)
    prepare_tables(client, settings)
    changed = prepare_tables(client, settings.model_copy(update={"retention_prediction_years": 2}))
    assert changed["retention"] == {
        "predictions": 2, "outcomes": 2, "drift": 2, "model_metrics": 2,
    }  # fmt: skip
    engine = scalar(
        client,
        f"SELECT engine_full FROM system.tables WHERE database = '{settings.clickhouse_database}' "
        "AND name = 'predictions'",
    )
    assert "toIntervalYear(2)" in engine
    again = prepare_tables(client, settings.model_copy(update={"retention_prediction_years": 2}))
    assert again == {"migrations": [], "retention": {}}
    assert clickhouse_connect is not None
