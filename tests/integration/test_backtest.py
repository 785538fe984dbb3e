"""Backtests on the real stack: exact topic-range copy, isolation, determinism, cleanup.

The test's own namespace plays "production": its ``ticks`` topic holds 20 real S&P 500
symbols, its consumer group has committed offsets and its Redis prefix has keys. The real
production namespace of the stack (no topic prefix) is snapshotted as well.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from backtesting.cli import parse_time
from backtesting.namespace import reset_namespace
from backtesting.replay import event_ts, watermarks
from backtesting.runner import (
    WALL_CLOCK_FIELDS,
    BacktestOutcome,
    BacktestRequest,
    run_backtest,
    run_dir,
)
from devtools import datasets
from indicators.feature_set import FeatureSet
from monitoring.lag import KafkaOffsets
from streams.replay import publish
from streams.topics import apply_topics, load_topic_spec
from tests.integration.pipeline import read_topic
from tickcast.config import Settings
from tickcast.errors import ModelError
from training.champion import PackagedModel
from training.models import make_model
from training.registry import default_name, register, resolve_versions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FROM, TO = "2010-01-01", "2010-06-30"
NAME = default_name(1)


def xgb_model(seed: int) -> PackagedModel:
    """A small XGBoost on the worker's own feature set, so every warm row is scored."""
    fs = FeatureSet.default()
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, len(fs.names)))
    y = (X[:, seed % len(fs.names)] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", seed, {"n_estimators": 10, "max_depth": 3})
    model.fit(pd.DataFrame(X, columns=list(fs.names)), y)
    return PackagedModel("xgboost", model, tuple(fs.names), fs.version, 1, 0.005, (0, 1))


def own_registry(settings: Settings, tmp_path: Path) -> Settings:
    """``settings`` with a private MLflow store (a fresh Settings: no cached URIs)."""
    return Settings(
        **{
            **settings.model_dump(),
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(tmp_path / "mlflow" / "artifacts"),
        }
    )


def twenty_symbols() -> pd.DataFrame:
    frame = datasets.load("sp500-daily")
    keep = sorted(frame["symbol"].unique())[:20]
    return frame[frame["symbol"].isin(keep)].reset_index(drop=True)


def raw_records(settings: Settings, topic: str) -> dict[int, list[tuple[Any, ...]]]:
    """Every record of a topic per partition: (key, value, headers), in offset order."""
    out: dict[int, list[tuple[Any, ...]]] = {}
    marks = watermarks(settings, topic)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "backtest-test-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        for partition, (low, high) in marks.items():
            rows: list[tuple[Any, ...]] = []
            if high > low:
                consumer.assign([TopicPartition(topic, partition, low)])
                while len(rows) < high - low:
                    for msg in consumer.consume(10_000, timeout=1.0):
                        if msg.error() is None:
                            rows.append((msg.key(), msg.value(), msg.headers()))
            out[partition] = rows
    finally:
        consumer.close()
    return out


def snapshot(ns: Settings, spec_names: list[str]) -> dict[str, Any]:
    """What a backtest must not change in a namespace."""
    offsets = KafkaOffsets(ns.kafka_bootstrap)
    client = redis.Redis.from_url(ns.redis_url)
    return {
        "group": offsets.committed(ns.consumer_group),
        "keys": sum(1 for _ in client.scan_iter(match=f"{ns.redis_key_prefix}*", count=1000)),
        "marks": {t: watermarks(ns, ns.topic(t)) for t in spec_names},
    }


def topics_now(settings: Settings) -> set[str]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bt-list"})
    try:
        return set(consumer.list_topics(timeout=10).topics)
    finally:
        consumer.close()


def run_leftovers(settings: Settings, run_id: str) -> dict[str, Any]:
    groups = KafkaOffsets(settings.kafka_bootstrap).list_groups()
    client = redis.Redis.from_url(settings.redis_url)
    return {
        "topics": sorted(t for t in topics_now(settings) if t.startswith(run_id)),
        "groups": sorted(g for g in groups if g == run_id or g.startswith(f"{run_id}-")),
        "keys": list(client.scan_iter(match=f"{run_id}:*", count=1000)),
    }


def comparable(predictions: pd.DataFrame) -> list[tuple[Any, ...]]:
    frame = predictions.drop(columns=list(WALL_CLOCK_FIELDS))
    return [tuple(r) for r in frame.itertuples(index=False)]


def feature_rows(ns: Settings) -> list[tuple[Any, ...]]:
    got = read_topic(ns, "features", "FeatureVector", lambda r: False, timeout_s=8)
    return sorted(
        (r["symbol"], r["ts"], tuple(r["values"]), r["correlation_id"])  # type: ignore[arg-type]
        for r in got
    )


def same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@pytest.fixture
def production(settings: Settings, tmp_path: Path) -> Settings:
    """The test namespace loaded like production: ticks, committed offsets, Redis keys, and
    a registry of its own where v1 is the champion and v2 a challenger."""
    settings = own_registry(settings, tmp_path)
    assert register(xgb_model(1), name=NAME, settings=settings).role == "champion"
    assert register(xgb_model(2), name=NAME, settings=settings).role == "challenger"
    apply_topics(settings)
    publish(settings, twenty_symbols(), "feed:sp500-daily")
    ticks = settings.topic("ticks")
    marks = watermarks(settings, ticks)
    committer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group}
    )
    committer.commit(
        offsets=[TopicPartition(ticks, p, hi // 2) for p, (_, hi) in marks.items()],
        asynchronous=False,
    )
    committer.close()
    client = redis.Redis.from_url(settings.redis_url)
    for i in range(5):
        client.set(f"{settings.redis_key_prefix}features:PROD{i}", b"x")
    return settings


def test_topic_range_backtest_is_exact_isolated_and_deterministic(
    production: Settings, stack: Settings, tmp_path: Path
) -> None:
    names = [t.name for t in load_topic_spec().topics]
    live = stack  # the stack's real production namespace (no prefix)
    before = {"test": snapshot(production, names), "live": snapshot(live, ["ticks"])}
    topics_before = topics_now(production)
    run_ids = [f"bt-{production.consumer_group}-{tag}" for tag in ("a", "b")]
    # the same two versions pinned, once by alias and once by number
    pins = [("champion", "2"), ("1", "2")]
    outcomes: list[BacktestOutcome] = []
    features: list[list[tuple[Any, ...]]] = []
    try:
        for run_id, versions in zip(run_ids, pins, strict=True):
            request = BacktestRequest(
                source="topic", from_ms=parse_time(FROM), to_ms=parse_time(TO, end=True),
                run_id=run_id, keep=True, log_mlflow=False, timeout_s=240,
                model=NAME, versions=versions,
            )  # fmt: skip
            outcomes.append(run_backtest(production, request))
            ns = production.model_copy(update={"topic_prefix": f"{run_id}."})
            features.append(feature_rows(ns))
        # the copy is exactly the production range: same bytes, keys, headers, partitions
        source = raw_records(production, production.topic("ticks"))
        copied = raw_records(production, f"{run_ids[0]}.ticks")
        lo, hi = parse_time(FROM), parse_time(TO, end=True)
        for partition, rows in source.items():
            want = [r for r in rows if lo <= (event_ts(r[1]) or -1) <= hi]
            assert copied.get(partition, []) == want, f"partition {partition} differs"
        frame = twenty_symbols()
        in_range = frame[frame["ts_ms"].between(lo, hi)]
        first = outcomes[0]
        assert first.ticks == len(in_range) > 0
        assert first.copy is not None
        assert not first.copy.fallbacks
        assert first.copy.probes > 0
        assert len(features[0]) == len(in_range)
    finally:
        for run_id in run_ids:
            reset_namespace(production.model_copy(update={
                "topic_prefix": f"{run_id}.", "consumer_group": run_id,
                "redis_key_prefix": f"{run_id}:",
            }))  # fmt: skip
    # determinism: identical predictions and feature records (ids included) in both runs
    a, b = outcomes
    assert not a.note, a.note
    scored = a.predictions
    assert set(scored["model_version"].astype(str)) == {"1", "2"}
    assert set(scored["model_name"]) == {NAME}
    # v1 (pinned first) scores as the champion, v2 beside it, on the same warm rows
    by_version = scored.groupby(scored["model_version"].astype(str))
    assert set(by_version.get_group("1")["role"]) == {"CHAMPION"}
    assert len(by_version.get_group("1")) == len(by_version.get_group("2")) > 0
    assert comparable(a.predictions) == comparable(b.predictions)
    assert [r[:2] + r[3:] for r in features[0]] == [r[:2] + r[3:] for r in features[1]]
    assert all(same(x[2], y[2]) for x, y in zip(*features, strict=True))
    # isolation: production offsets, keys and topics untouched
    after = {"test": snapshot(production, names), "live": snapshot(live, ["ticks"])}
    assert after == before
    topics_after = topics_now(production)
    prod_names = {production.topic(n) for n in names} | {live.topic(n) for n in names}
    assert (topics_before ^ topics_after) & prod_names == set()
    assert not any(t.startswith(production.topic_prefix) for t in topics_after - topics_before)
    for run_id in run_ids:
        assert run_leftovers(production, run_id) == {"topics": [], "groups": [], "keys": []}
    report = run_dir(production, run_ids[0])
    assert (report / f"backtest_{run_ids[0]}.json").exists()
    assert (report / f"backtest_{run_ids[0]}.html").exists()
    assert (report / "predictions.parquet").exists()


def test_dataset_backtest_cleans_up_and_reports(settings: Settings) -> None:
    run_id = f"bt-{settings.consumer_group}-ds"
    request = BacktestRequest(
        source="sp500-daily", symbols=20, from_ms=parse_time(FROM), to_ms=parse_time(TO, end=True),
        run_id=run_id, log_mlflow=False, timeout_s=240,
    )  # fmt: skip
    outcome = run_backtest(settings, request)
    frame = twenty_symbols()
    assert outcome.ticks == int(frame["ts_ms"].between(request.from_ms, request.to_ms).sum())
    assert outcome.report is not None
    assert outcome.report.meta["backtest_run_id"] == run_id
    assert outcome.report.meta["n_symbols"] == 20
    if outcome.predictions.empty:  # features-only worker: the report says so
        assert "features-only" in outcome.note
    assert run_leftovers(settings, run_id) == {"topics": [], "groups": [], "keys": []}
    assert Path(outcome.files["json"]).exists()
    assert (run_dir(settings, run_id) / "summary.json").exists()


def test_pinned_versions_resolve_or_fail_clearly(settings: Settings, tmp_path: Path) -> None:
    registry = own_registry(settings, tmp_path)
    register(xgb_model(1), name=NAME, settings=registry)
    register(xgb_model(2), name=NAME, settings=registry)
    assert resolve_versions(registry, NAME, ["2", "champion", "1"]) == (2, 1)
    with pytest.raises(ModelError, match="no version 7"):
        resolve_versions(registry, NAME, ["1", "7"])
    with pytest.raises(ModelError, match="no version or alias 'nightly'"):
        resolve_versions(registry, NAME, ["nightly"])
