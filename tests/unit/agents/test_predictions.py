"""The prediction stage: scoring, serving JSON, outcome join and model swaps between batches.

Models are small XGBoost boosters registered in a real MLflow sqlite store in a tmp folder;
features come from the real FeatureEngine on synthetic bars.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.feature_engine import BatchOutput, FeatureEngine, SymbolStream
from agents.online_models import LinearPredictor
from agents.predictions import PredictionStage
from agents.scoring import ModelSet
from indicators.feature_set import FeatureSet
from online_learning.challengers import default_challengers
from online_learning.checkpoint import save_checkpoint
from streams.codec import get_codec
from streams.raw_record import RawRecord
from streams.replay import tick_records
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.metrics import Metrics
from training import champion as champion_module
from training.champion import PackagedModel, feature_importance
from training.models import make_model
from training.registry import promote, register

FS = FeatureSet.default()
NAMES = tuple(FS.names)
T0 = 1_600_000_000_000
NOW_MS = T0 + 365 * 86_400_000  # the engine's wall clock: after the bars (no FUTURE_TIMESTAMP)


def _bars(n_symbols: int, n_bars: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_symbols):
        close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
        open_ = close * np.exp(rng.normal(0, 0.003, n_bars))
        high = np.maximum(open_, close) * 1.002
        low = np.minimum(open_, close) * 0.998
        for i in range(n_bars):
            rows.append((f"S{s}", T0 + i * 60_000, open_[i], high[i], low[i], close[i], 1e4))
    frame = pd.DataFrame(rows, columns=["symbol", "ts_ms", "open", "high", "low", "close",
                                        "volume"])  # fmt: skip
    return frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def _raw(frame: pd.DataFrame) -> list[RawRecord]:
    codec = get_codec("Tick")
    return [
        RawRecord("ticks", 0, offset, r["symbol"].encode(), codec.encode(r))
        for offset, r in enumerate(tick_records(frame, "test"))
    ]


class Stream:
    """The feature engine plus an in-memory state store, cut into batches."""

    def __init__(self) -> None:
        self.engine = FeatureEngine(FS)
        self.states: dict[str, SymbolStream] = {}

    def batch(self, records: list[RawRecord], now_ms: int = NOW_MS) -> BatchOutput:
        out = self.engine.process(records, lambda s, _p: self.states.get(s), now_ms)
        self.states.update(out.touched)
        return out


def _batches(records: list[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


def _train(seed: int, fsv: str = FS.version) -> PackagedModel:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, len(NAMES)))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", seed, {"n_estimators": 5, "max_depth": 2})
    model.fit(pd.DataFrame(X, columns=list(NAMES)), y)
    return PackagedModel("xgboost", model, NAMES, fsv, 1, 0.004 + seed / 1000, (0, 1))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A tmp MLflow store: ``tc-a`` v1 champion + v2 challenger, ``tc-swap`` the same."""
    base = Settings(data_dir=tmp_path_factory.mktemp("mlflow"), mlflow_tracking_uri="",
                    mlflow_artifact_root="", model_poll_interval_s=0.01,
                    online_shadow_models="")  # fmt: skip
    for name in ("tc-a", "tc-swap"):
        register(_train(1), name=name, settings=base)
        register(_train(2), name=name, settings=base)
    return base


def _stage(store: Settings, name: str, **kw: Any) -> PredictionStage:
    stage = PredictionStage(store.model_copy(update={"model_name": name, **kw}), Metrics())
    stage.open()
    return stage


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(id of the packaged model, rows) of every predict_proba call."""
    seen: list[tuple[int, int]] = []
    inner = champion_module.PackagedModel.predict_proba

    def spy(self: PackagedModel, X: np.ndarray) -> np.ndarray:
        seen.append((id(self), len(X)))
        return inner(self, X)

    monkeypatch.setattr(champion_module.PackagedModel, "predict_proba", spy)
    return seen


def test_one_predict_per_model_per_batch_and_prediction_fields(
    store: Settings, calls: list[tuple[int, int]]
) -> None:
    stage = _stage(store, "tc-a")
    assert stage.describe()["tc-a"] == {"champion": "tc-a:1", "challengers": ["tc-a:2"]}
    stream = Stream()
    frame = _bars(3, 40)
    records = _raw(frame)
    batches = list(_batches(records, 25))
    preds: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    for batch in batches:
        out = stream.batch(batch)
        calls.clear()
        result = stage.process(out, now_ms=777)
        assert sorted(n for _, n in calls) == [len(out.features)] * 2  # champion + challenger
        assert len({i for i, _ in calls}) == 2
        preds += result.predictions
        features += out.features

    champ = [p for p in preds if p["role"] == "CHAMPION"]
    chall = [p for p in preds if p["role"] == "CHALLENGER"]
    assert len(champ) == len(chall) == len(features) == len(records)
    assert {(p["model_name"], p["model_version"]) for p in champ} == {("tc-a", "1")}
    assert {(p["model_name"], p["model_version"]) for p in chall} == {("tc-a", "2")}
    for p, f in zip(champ, features, strict=True):
        assert (p["symbol"], p["ts"], p["correlation_id"]) == (
            f["symbol"], f["ts"], f["correlation_id"])  # fmt: skip
        assert p["horizon"] == 1
        assert p["feature_set_version"] == FS.version
        assert p["produced_at"] == 777
        assert p["scoring_latency_ms"] >= 0
    # the champion's probabilities are the booster's own on the feature matrix
    X = np.array([f["values"] for f in features], dtype=np.float64)
    want = _train(1).model.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose([p["prob_up"] for p in champ], want, rtol=1e-6, atol=1e-7)
    expected = (2 * np.array([p["prob_up"] for p in champ]) - 1) * _train(1).return_scale
    np.testing.assert_allclose([p["expected_return"] for p in champ], expected)
    codec = get_codec("Prediction")
    assert codec.decode(codec.encode(preds[0]))["model_version"] == preds[0]["model_version"]


def test_latest_json_is_the_champions_newest_per_symbol(store: Settings) -> None:
    stage = _stage(store, "tc-a", explain_budget=0.0)  # every row explained
    out = Stream().batch(_raw(_bars(3, 10)))
    result = stage.process(out, now_ms=999)
    assert sorted(result.latest) == ["S0", "S1", "S2"]
    for symbol, doc in result.latest.items():
        last = [p for p in result.predictions if p["symbol"] == symbol and p["role"] == "CHAMPION"]
        feature = [f for f in out.features if f["symbol"] == symbol][-1]
        assert doc == {
            "symbol": symbol, "event_time": feature["ts"], "model": "tc-a", "version": "1",
            "role": "CHAMPION", "value": last[-1]["prob_up"],
            "expected_return": last[-1]["expected_return"], "horizon": 1,
            "feature_event_time": feature["ts"], "updated_at": 999,
            "correlation_id": feature["correlation_id"],
            "explanation_features": last[-1].get("explanation_features"),
            "explanation_contributions": last[-1].get("explanation_contributions"),
        }  # fmt: skip
        assert len(doc["explanation_features"]) == stage.settings.explain_top_k > 0
        challenger = result.latest_challenger[symbol]
        assert (challenger["model"], challenger["version"], challenger["role"]) == (
            "tc-a", "2", "CHALLENGER")  # fmt: skip
        assert challenger["event_time"] == feature["ts"]


def test_outcomes_match_a_pandas_shift_and_never_come_early(store: Settings) -> None:
    stage = _stage(store, "tc-a")
    stream = Stream()
    frame = _bars(4, 30, seed=9)
    bar_of = {(r.symbol, r.ts_ms): i for i, r in enumerate(frame.itertuples())}
    preds: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    seen_bars: set[tuple[str, int]] = set()
    for batch in _batches(_raw(frame), 7):  # batches cut across h-bar boundaries
        out = stream.batch(batch)
        result = stage.process(out, now_ms=1)
        seen_bars |= {(f["symbol"], f["ts"]) for f in out.features}
        for o in result.outcomes:  # the label bar is in this batch or an earlier one
            assert (o["symbol"], o["realized_ts"]) in seen_bars
            assert o["realized_ts"] > o["ts"]
        preds += result.predictions
        outcomes += result.outcomes

    frame = frame.sort_values(["symbol", "ts_ms"])
    frame["next_ts"] = frame.groupby("symbol")["ts_ms"].shift(-1)
    frame["realized"] = np.log(frame.groupby("symbol")["close"].shift(-1) / frame["close"])
    want = frame.dropna(subset=["realized"]).set_index(["symbol", "ts_ms"])
    champ = {(o["symbol"], o["ts"]): o for o in outcomes if o["role"] == "CHAMPION"}
    assert sorted(champ) == sorted(want.index)  # every prediction but the last bar's
    prob = {(p["symbol"], p["ts"]): p["prob_up"] for p in preds if p["role"] == "CHAMPION"}
    for key, o in champ.items():
        row = want.loc[key]
        assert o["realized_ts"] == int(row["next_ts"])
        assert math.isclose(o["realized_return"], row["realized"], rel_tol=1e-12, abs_tol=1e-15)
        assert o["prob_up"] == prob[key]
        up = row["realized"] > 0
        assert o["hit"] == ((o["prob_up"] > 0.5) == up)
        p = min(max(o["prob_up"], 1e-6), 1 - 1e-6)
        assert math.isclose(o["loss"], -math.log(p) if up else -math.log(1 - p))
        assert len(o["features"]) == len(NAMES)
        assert o["model_version"] == "1"
        assert o["horizon"] == 1
        assert bar_of[key] < bar_of[(key[0], o["realized_ts"])]
    # the carried features are the prediction-time vector
    vec = {(s, t): v for s, t, v in ((o["symbol"], o["ts"], o["features"]) for o in outcomes)}
    stream2 = Stream().batch(_raw(frame.sort_values(["ts_ms", "symbol"], kind="stable")))
    for f in stream2.features:
        if (f["symbol"], f["ts"]) in vec:
            np.testing.assert_array_equal(vec[(f["symbol"], f["ts"])], f["values"])
    # state stays bounded by the horizon, and survives a pickle round trip
    for state in stream.states.values():
        joiner = state.extra["outcomes"]
        assert len(joiner) == 2  # the last bar's champion + challenger await their label
        assert SymbolStream.loads(state.dumps()).extra["outcomes"].n_bars == joiner.n_bars
    codec = get_codec("Outcome")
    assert codec.decode(codec.encode(outcomes[0]))["features"] is not None


async def test_swap_between_batches_scores_every_record_exactly_once(store: Settings) -> None:
    stage = _stage(store, "tc-swap")
    assert stage.describe()["tc-swap"]["champion"] == "tc-swap:1"
    stream = Stream()
    features: list[dict[str, Any]] = []
    champion: list[dict[str, Any]] = []
    promoted = asyncio.ensure_future(asyncio.to_thread(promote, stage.settings, "tc-swap", 2,
                                                       "test"))  # fmt: skip
    records = _raw(_bars(5, 200))
    for batch in _batches(records[:500], 10):  # keep the rest for after the swap
        out = stream.batch(batch)
        result = stage.process(out, now_ms=1)
        features += out.features
        champion += [p for p in result.predictions if p["role"] == "CHAMPION"]
        await stage.refresh()
        await asyncio.sleep(0.005)
        if promoted.done() and stage.describe()["tc-swap"]["champion"] == "tc-swap:2":
            break
    await promoted
    # let the background poll (an MLflow load in a thread) land, however busy the machine
    deadline = time.monotonic() + 120
    while stage.describe()["tc-swap"]["champion"] != "tc-swap:2":
        assert time.monotonic() < deadline, "the promoted model never reached the stage"
        await asyncio.sleep(0.05)
        await stage.refresh()
    rest = records[len(features) :]
    for batch in _batches(rest[:50], 10):
        out = stream.batch(batch)
        features += out.features
        champion += [p for p in stage.process(out, 1).predictions if p["role"] == "CHAMPION"]
    assert [(p["symbol"], p["ts"]) for p in champion] == [(f["symbol"], f["ts"]) for f in features]
    versions = [p["model_version"] for p in champion]
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"}
    assert set(versions[switch:]) == {"2"}
    assert stage.describe()["tc-swap"]["challengers"] == ["tc-swap:1"]


async def test_mismatched_feature_set_is_refused_and_old_set_kept(store: Settings) -> None:
    name = "tc-bad"
    register(_train(3), name=name, settings=store)
    stage = _stage(store, name)
    register(_train(4, fsv="another-feature-set"), name=name, settings=store)
    await stage.reload_now()
    assert stage.describe()[name] == {"champion": f"{name}:1", "challengers": []}
    out = Stream().batch(_raw(_bars(2, 5)))
    assert {p["model_version"] for p in stage.process(out, 1).predictions} == {"1"}
    assert stage.metrics.value("tickcast_model_info", model=name, version="1",
                               role="CHAMPION") == 1  # fmt: skip


def test_the_champions_feature_importance_is_exported(store: Settings) -> None:
    stage = _stage(store, "tc-a")
    expected = feature_importance(_train(1))  # the same seed: the registered champion v1
    assert expected[NAMES[0]] > 0.5  # the planted signal dominates the gains
    for feature, share in expected.items():
        assert stage.metrics.value(
            "tickcast_feature_importance", model="tc-a", feature=feature
        ) == pytest.approx(share)


def test_no_champion_scores_nothing_but_keeps_the_join(store: Settings) -> None:
    stage = _stage(store, "tc-nothing-registered")
    stream = Stream()
    result = stage.process(stream.batch(_raw(_bars(2, 5))), 1)
    assert result.predictions == []
    assert result.outcomes == []
    assert result.latest == {}
    assert stage.unscored == 10
    assert all(s.extra["outcomes"].n_bars == 5 for s in stream.states.values())
    assert stage.metrics.value("tickcast_model_info", model="tc-nothing-registered",
                               version="", role="CHAMPION") == 0  # fmt: skip


class FlakySource:
    """MLflow down until ``up`` is set; then one champion from ``store``."""

    def __init__(self, store: Settings) -> None:
        from agents.predictions import MlflowSource

        self.real = MlflowSource(store.model_copy(update={"model_name": "tc-a"}))
        self.up = False

    def _check(self) -> None:
        if not self.up:
            raise DependencyError("mlflow", "connection refused")

    def watch(self, name: str) -> tuple[int | None, tuple[int, ...]]:
        self._check()
        return self.real.watch("tc-a")

    def load(self, name: str, versions: tuple[int | None, tuple[int, ...]]) -> ModelSet:
        self._check()
        return self.real.load("tc-a", versions)

    def checkpoint_id(self) -> str | None:
        self._check()
        return None

    def restore(self) -> tuple[str | None, list[Any]]:
        return None, []


async def test_mlflow_down_keeps_running_and_recovers(store: Settings) -> None:
    source = FlakySource(store)
    stage = PredictionStage(store, Metrics(), source=source)
    stage.open()
    assert stage.metrics.value("tickcast_dependency_up", component="mlflow") == 0
    stream = Stream()
    frame = _bars(2, 6)
    records = _raw(frame)
    assert stage.process(stream.batch(records[:6]), 1).predictions == []
    source.up = True
    await stage.reload_now()
    assert stage.metrics.value("tickcast_dependency_up", component="mlflow") == 1
    result = stage.process(stream.batch(records[6:]), 1)
    assert {p["model_version"] for p in result.predictions} == {"1", "2"}
    assert len(result.outcomes) == 2 * 2 * 2  # bars 3, 4 of 2 symbols, 2 models


def test_online_challengers_shadow_score_from_the_latest_checkpoint(store: Settings) -> None:
    settings = store.model_copy(update={"online_shadow_models": "river-logreg,river-hat"})
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, len(NAMES)))
    challengers = default_challengers(feature_names=NAMES, feature_set_version=FS.version)
    for c in challengers:
        c.learn(X, X[:, 0] > 0)
    save_checkpoint(settings, challengers)
    stage = _stage(settings, "tc-a")
    online = {m.name: m.version for m in stage.online}
    assert online == {"river-logreg": "online-400", "river-hat": "online-400"}
    out = Stream().batch(_raw(_bars(2, 40)))
    result = stage.process(out, 1)
    Xs = np.array([f["values"] for f in out.features])
    for c in challengers[:2]:
        mine = [p for p in result.predictions if p["model_name"] == c.name]
        assert {(p["role"], p["model_version"]) for p in mine} == {("CHALLENGER", "online-400")}
        np.testing.assert_allclose([p["prob_up"] for p in mine], c.predict_proba_many(Xs, NAMES),
                                   rtol=1e-9, atol=1e-12)  # fmt: skip
    assert not [p for p in result.predictions if p["model_name"] == "river-arf"]


def test_frozen_logistic_regression_equals_river() -> None:
    rng = np.random.default_rng(3)
    names = [f"f{i}" for i in range(6)]
    (logreg, *_) = default_challengers(feature_names=names)
    X = rng.standard_normal((300, 6)) * [1, 2, 3, 4, 5, 0]  # a constant column: std 0
    logreg.learn(X, X[:, 0] + X[:, 1] > 0)
    fast = LinearPredictor.compile(logreg, names)
    assert fast is not None
    Y = rng.standard_normal((50, 6))
    Y[0, 2] = np.nan
    Y[1, 3] = np.inf
    np.testing.assert_allclose(fast.predict_proba(Y), logreg.predict_proba_many(Y, names),
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    assert LinearPredictor.compile(default_challengers()[1], names) is None


@pytest.fixture(autouse=True)
def _chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow may write mlruns/ next to the cwd


def test_explanation_coverage_is_counted_within_the_default_budget(store: Settings) -> None:
    stage = _stage(store, "tc-a")  # TICKCAST_EXPLAIN_BUDGET default: 1
    assert stage.settings.explain_budget == 1.0
    result = stage.process(Stream().batch(_raw(_bars(3, 10))), now_ms=999)
    champion = [p for p in result.predictions if p["role"] == "CHAMPION"]
    explained = [p for p in champion if p.get("explanation_features") is not None]
    # the first batch has no cost estimate yet: it explains one row, the newest of a symbol
    assert len(explained) == 1
    assert explained[0]["ts"] == max(p["ts"] for p in champion)
    value = stage.metrics.value
    assert value("tickcast_explanations_total", outcome="explained") == 1
    assert value("tickcast_explanations_total", outcome="over_budget") == len(champion) - 1
