"""End to end on the real broker, Redis and a per-test MLflow store: ticks → worker →
predictions, outcomes and Redis; a promotion while the stream runs; kill -9 mid-replay."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import redis

from agents.feature_engine import FeatureEngine, SymbolStream
from agents.predictions import PredictionStage
from indicators.feature_set import FeatureSet
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.raw_record import RawRecord
from streams.replay import publish, tick_records
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, read_topic
from tests.integration.test_features_pipeline import make_bars
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.models import make_model
from training.registry import default_name, promote, register

pytestmark = pytest.mark.integration

FS = FeatureSet.default()
NAME = default_name(1)
KEY = ("symbol", "ts", "model_name", "model_version", "horizon")


def _model(seed: int) -> PackagedModel:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, len(FS.names)))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", seed, {"n_estimators": 10, "max_depth": 3})
    model.fit(pd.DataFrame(X, columns=list(FS.names)), y)
    return PackagedModel("xgboost", model, tuple(FS.names), FS.version, 1, 0.005, (0, 1))


def _sequence_models(seed: int) -> list[PackagedModel]:
    """An LSTM (ONNX cell) and a per-symbol ARIMA, fitted on other bars of the same symbols:
    both keep per-symbol state in the worker's checkpointed symbol state."""
    from indicators import compute_frame

    bars = make_bars(30, 250, seed=seed)
    frame = compute_frame(bars, FS).sort_values(["ts_ms", "symbol"], kind="stable")
    frame = frame.reset_index(drop=True)
    nxt = frame.groupby("symbol")["ret_1"].shift(-1)
    keep = nxt.notna().to_numpy()
    X, y = frame.loc[keep, ["symbol", "ts_ms", *FS.names]], (nxt[keep] > 0).astype(int)
    out = []
    for kind, params in (("lstm", {"hidden": 8, "epochs": 2}), ("arima", {})):
        model = make_model(kind, 0, params).fit(X, y.to_numpy())
        out.append(PackagedModel(kind, model, tuple(FS.names), FS.version, 1, 0.005, (0, 1)))
    return out


@pytest.fixture
def scoring(settings: Settings, tmp_path: Path) -> Settings:
    """The test's namespace plus its own MLflow store (a fresh Settings: no cached URIs)."""
    fresh = Settings(
        **{
            **settings.model_dump(),
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(tmp_path / "mlflow" / "artifacts"),
            "model_poll_interval_s": 0.5,
            "checkpoint_interval_s": 0.5,
        }
    )
    apply_topics(fresh)
    return fresh


def _dedupe(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        out.setdefault(tuple(r[k] for k in KEY), r)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _paced(
    settings: Settings,
    frame: pd.DataFrame,
    per_step_s: float,
    hold: tuple[int, threading.Event] | None = None,
) -> None:
    """Publish one timestamp (all symbols) at a time, so batches keep flowing.

    ``hold=(k, event)`` stops after ``k`` timestamps until ``event`` is set, so a test's kill
    lands mid-replay however slow the machine is.
    """
    codec, producer = get_codec("Tick"), BatchProducer(settings)
    topic = settings.topic("ticks")
    for i, (_, step) in enumerate(frame.groupby("ts_ms", sort=True)):
        if hold is not None and i == hold[0]:
            assert hold[1].wait(timeout=300), "the hold on the publisher was never released"
        for record in tick_records(step, "test"):
            producer.produce(topic, record["symbol"].encode(), codec.encode(record))
        producer.flush()
        time.sleep(per_step_s)


def test_predictions_outcomes_redis_and_a_live_promotion(scoring: Settings, tmp_path: Path) -> None:
    settings = scoring
    register(_model(1), name=NAME, settings=settings)  # v1: champion
    frame = make_bars(6, 160, seed=21)
    first_ts = sorted(frame.ts_ms.unique())
    part_a = frame[frame.ts_ms < first_ts[60]]
    part_b = frame[frame.ts_ms >= first_ts[60]]
    publish(settings, part_a, "test")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        read_topic(settings, "predictions", "Prediction", lambda r: len(r) >= len(part_a),
                   alive=worker.alive)  # fmt: skip
        register(_model(2), name=NAME, settings=settings)  # v2: challenger, shadow-scores
        feeder = threading.Thread(target=_paced, args=(settings, part_b, 0.05))
        feeder.start()
        time.sleep(2.0)
        promote(settings, NAME, 2, "integration test")  # while ticks flow
        feeder.join()
        preds = read_topic(
            settings, "predictions", "Prediction",
            lambda r: sum(p["role"] == "CHAMPION" for p in r) >= len(frame), alive=worker.alive,
        )  # fmt: skip
        outcomes = read_topic(
            settings, "outcomes", "Outcome",
            lambda r: sum(o["role"] == "CHAMPION" for o in r) >= len(frame) - 6,
            alive=worker.alive,
        )  # fmt: skip
        time.sleep(1.0)
    finally:
        worker.stop()

    champion = [p for p in preds if p["role"] == "CHAMPION"]
    keys = [(p["symbol"], p["ts"]) for p in champion]
    assert len(keys) == len(set(keys)) == len(frame)  # no tick missing or double-scored
    assert set(keys) == set(zip(frame.symbol, frame.ts_ms, strict=True))
    by_symbol = pd.DataFrame(champion).sort_values(["symbol", "ts"]).groupby("symbol")
    switched = 0
    for _, group in by_symbol:
        versions = group.model_version.tolist()
        assert versions == sorted(versions), "a symbol went back to the old champion"
        switched += "2" in versions
    assert switched == 6
    assert {p["model_version"] for p in champion} == {"1", "2"}
    assert {p["model_version"] for p in preds if p["role"] == "CHALLENGER"} <= {"1", "2"}

    # outcomes: the log return to the next bar, for every prediction but each symbol's last
    closes = frame.sort_values(["symbol", "ts_ms"]).copy()
    closes["next_ts"] = closes.groupby("symbol").ts_ms.shift(-1)
    closes["realized"] = np.log(closes.groupby("symbol").close.shift(-1) / closes.close)
    want = closes.dropna(subset=["realized"]).set_index(["symbol", "ts_ms"])
    deduped = _dedupe(outcomes)
    assert len(deduped) == len(outcomes)
    predicted = {tuple(p[k] for k in KEY) for p in preds}
    assert set(deduped) == {k for k in predicted if (k[0], k[1]) in want.index}
    for (symbol, ts, *_), o in deduped.items():
        row = want.loc[(symbol, ts)]
        assert o["realized_ts"] == int(row.next_ts)
        assert math.isclose(o["realized_return"], row.realized, rel_tol=1e-12, abs_tol=1e-15)
        assert len(o["features"]) == len(FS.names)

    client = redis.Redis.from_url(settings.redis_url)
    last = frame.sort_values("ts_ms").groupby("symbol").tail(1)
    for r in last.itertuples():
        doc = orjson.loads(client.get(f"{settings.redis_key_prefix}prediction:{r.symbol}"))
        assert (doc["event_time"], doc["model"], doc["version"], doc["role"]) == (
            r.ts_ms, NAME, "2", "CHAMPION")  # fmt: skip
        mine = next(p for p in champion if (p["symbol"], p["ts"]) == (r.symbol, r.ts_ms))
        assert doc["value"] == mine["prob_up"]
        assert doc["correlation_id"] == mine["correlation_id"]
        chall = orjson.loads(
            client.get(f"{settings.redis_key_prefix}prediction:{r.symbol}:challenger")
        )
        assert (chall["version"], chall["role"], chall["event_time"]) == (
            "1", "CHALLENGER", r.ts_ms)  # fmt: skip


def _uninterrupted(settings: Settings, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The same stage run in-process on the whole replay, never killed."""
    stage = PredictionStage(settings, Metrics())
    stage.open()
    engine, states = FeatureEngine(FS), dict[str, SymbolStream]()
    codec = get_codec("Tick")
    records = [
        RawRecord("ticks", 0, i, r["symbol"].encode(), codec.encode(r))
        for i, r in enumerate(tick_records(frame, "test"))
    ]
    outcomes: list[dict[str, Any]] = []
    for i in range(0, len(records), 500):
        now_ms = int(time.time() * 1000)  # a wall clock of 0 would make every tick future
        out = engine.process(records[i : i + 500], lambda s, _p: states.get(s), now_ms)
        states.update(out.touched)
        outcomes += stage.process(out, 0).outcomes
    return outcomes


def test_sigkill_mid_replay_gives_the_uninterrupted_outcomes(
    scoring: Settings, tmp_path: Path
) -> None:
    settings = scoring
    register(_model(3), name=NAME, settings=settings)
    for packaged in _sequence_models(seed=14):  # challengers 2 (LSTM) and 3 (ARIMA)
        register(packaged, name=NAME, settings=settings)
    frame = make_bars(30, 250, seed=13)
    want = _dedupe(_uninterrupted(settings, frame))
    assert {k[3] for k in want} == {"1", "2", "3"}  # the stateful models are joined too
    publish(settings, frame, "test")
    first = WorkerProcess(settings, tmp_path / "worker1.log").start()
    seen = read_topic(settings, "outcomes", "Outcome", lambda r: len(r) >= len(want) // 3,
                      alive=first.alive)  # fmt: skip
    first.kill()
    assert len(_dedupe(seen)) < len(want), "the worker finished before it could be killed"
    second = WorkerProcess(settings, tmp_path / "worker2.log").start()
    try:
        got = read_topic(settings, "outcomes", "Outcome",
                         lambda r: len(_dedupe(r)) >= len(want), alive=second.alive)  # fmt: skip
    finally:
        second.stop()
    deduped = _dedupe(got)
    assert set(deduped) == set(want)
    fields = [f for f in want[next(iter(want))] if f != "correlation_id"]
    for key, expected in want.items():
        assert all(_same(deduped[key][f], expected[f]) for f in fields), key
    for record in got:  # a replayed outcome repeats the first one exactly
        first_seen = deduped[tuple(record[k] for k in KEY)]
        assert all(_same(record[f], first_seen[f]) for f in fields)
