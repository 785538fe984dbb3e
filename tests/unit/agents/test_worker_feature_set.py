"""The worker's feature set: explicit, else the union of the registered models' sets (#18).

A real MLflow sqlite store in a tmp folder; the features come from the real FeatureEngine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.feature_engine import FeatureEngine, SymbolStream
from agents.predictions import PredictionStage
from agents.worker import build_stage, choose_feature_set, compatible_versions
from indicators.errors import FeatureSetError
from indicators.feature_sets import feature_set
from sidestreams.features import SideFeatureSet, spec_from_settings
from tests.unit.agents.test_predictions import NOW_MS, _bars, _raw
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.models import make_model
from training.registry import register

BOTH_NAME = "classic+alpha158"
CLASSIC, ALPHA, BOTH = (feature_set(n) for n in ("classic", "alpha158", BOTH_NAME))


def _train(names: tuple[str, ...], version: str, seed: int) -> PackagedModel:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, len(names)))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", seed, {"n_estimators": 5, "max_depth": 2})
    model.fit(pd.DataFrame(X, columns=list(names)), y)
    return PackagedModel("xgboost", model, names, version, 1, 0.004, (0, 1))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """``fs-classic`` (champion on classic), ``fs-alpha`` (champion on alpha158)."""
    base = Settings(data_dir=tmp_path_factory.mktemp("mlflow"), mlflow_tracking_uri="",
                    mlflow_artifact_root="", model_poll_interval_s=0.01,
                    online_shadow_models="")  # fmt: skip
    register(_train(CLASSIC.names, CLASSIC.version, 1), name="fs-classic", feature_set=CLASSIC,
             settings=base)  # fmt: skip
    register(_train(ALPHA.names, ALPHA.version, 2), name="fs-alpha", feature_set=ALPHA,
             settings=base)  # fmt: skip
    return base


def _with(store: Settings, **kw: object) -> Settings:
    return store.model_copy(update=kw)


def test_the_stream_computes_the_union_of_the_registered_models_sets(store: Settings) -> None:
    assert choose_feature_set(_with(store, model_name="fs-classic"))[0] == "classic"
    assert choose_feature_set(_with(store, model_name="fs-alpha"))[0] == "alpha158"
    both = _with(store, model_name="fs-alpha,fs-classic")
    assert choose_feature_set(both)[0] == "classic+alpha158"
    assert choose_feature_set(_with(store, model_name="nothing-registered")) == (
        "classic",
        "no registered model",
    )


def test_an_explicit_set_wins_and_an_unknown_one_is_refused(store: Settings) -> None:
    explicit = _with(store, model_name="fs-alpha", feature_set="classic")
    assert choose_feature_set(explicit) == ("classic", "TICKCAST_FEATURE_SET")
    with pytest.raises(FeatureSetError, match="known: classic"):
        choose_feature_set(_with(store, feature_set="alpha360"))
    off = _with(store, model_name="fs-alpha", scoring_enabled=False)
    assert choose_feature_set(off)[0] == "classic"


def test_build_stage_computes_the_chosen_set(store: Settings) -> None:
    stage = build_stage(_with(store, model_name="fs-alpha", scoring_enabled=False,
                              feature_set="alpha158"), Metrics())  # fmt: skip
    assert stage.engine.feature_set.names == ALPHA.names
    assert stage.engine.version == ALPHA.version


def test_compatible_versions_are_the_contained_sets_with_and_without_side_columns() -> None:
    assert compatible_versions("alpha158") == {ALPHA.version}
    assert compatible_versions("classic+alpha158") == {CLASSIC.version, ALPHA.version, BOTH.version}
    spec = spec_from_settings(Settings())
    side = compatible_versions("classic+alpha158", spec)
    assert SideFeatureSet(CLASSIC, spec).version in side
    assert SideFeatureSet(BOTH, spec).version in side


def test_models_of_contained_sets_score_their_own_columns_of_the_union(store: Settings) -> None:
    settings = _with(store, model_name="fs-classic,fs-alpha")
    stage = PredictionStage(settings, Metrics(), BOTH, compatible=compatible_versions(BOTH_NAME))
    stage.open()
    engine, states = FeatureEngine(BOTH), dict[str, SymbolStream]()
    out = engine.process(_raw(_bars(3, 80)), lambda s, _p: states.get(s), NOW_MS)
    result = stage.process(out, now_ms=NOW_MS)
    rows = pd.DataFrame([r["values"] for r in out.features], columns=list(BOTH.names))
    for name, fs in (("fs-classic", CLASSIC), ("fs-alpha", ALPHA)):
        got = [p["prob_up"] for p in result.predictions if p["model_name"] == name]
        assert len(got) == len(rows) == 240
        champion = stage.scorers[name].model_set.champion
        assert champion is not None
        assert champion.feature_set_version == fs.version
        # reference: pandas picks the model's columns by name from the union's vectors
        want = champion.predict_proba(rows[list(fs.names)].to_numpy(dtype=np.float64))
        np.testing.assert_array_equal(np.array(got), want)


def test_a_model_whose_set_the_stream_lacks_is_refused_and_counted(store: Settings) -> None:
    metrics = Metrics()
    stage = PredictionStage(_with(store, model_name="fs-alpha"), metrics, CLASSIC,
                            compatible=compatible_versions("classic"))  # fmt: skip
    stage.open()
    assert stage.scorers["fs-alpha"].model_set.champion is None
    value = metrics.registry.get_sample_value(
        "tickcast_model_refusals_total", {"model": "fs-alpha"}
    )
    assert value == 1.0


def test_a_restart_with_another_set_starts_its_indicators_afresh() -> None:
    from indicators import compute_frame

    bars = _bars(2, 90)
    first, later = bars.iloc[:100], bars.iloc[100:]
    records = _raw(bars)
    states: dict[str, SymbolStream] = {}
    old = FeatureEngine(CLASSIC).process(records[:100], lambda s, _p: states.get(s), NOW_MS)
    states.update(old.touched)
    new = FeatureEngine(ALPHA)
    out = new.process(records[100:], lambda s, _p: states.get(s), NOW_MS)
    assert out.reset_states == 2
    assert {r["feature_set_version"] for r in out.features} == {ALPHA.version}
    # the new set's values are those of its indicators run on the later bars only
    want = compute_frame(later, ALPHA)
    got = pd.DataFrame([r["values"] for r in out.features], columns=list(ALPHA.names))
    pd.testing.assert_frame_equal(got, want[list(ALPHA.names)].reset_index(drop=True))
    # the offsets survive: the first part, redelivered, is recognised and skipped
    again = new.process(records[:100], lambda s, _p: out.touched.get(s), NOW_MS)
    assert again.skipped_replayed == len(first)
    assert again.reset_states == 0


def test_a_pinned_worker_computes_the_sets_of_its_pinned_versions(store: Settings) -> None:
    register(
        _train(CLASSIC.names, CLASSIC.version, 3),
        name="fs-pin",
        feature_set=CLASSIC,
        settings=store,
    )  # fmt: skip  (v1, champion)
    register(
        _train(ALPHA.names, ALPHA.version, 4), name="fs-pin", feature_set=ALPHA, settings=store
    )  # fmt: skip  (v2, challenger)
    assert choose_feature_set(_with(store, model_name="fs-pin"))[0] == BOTH_NAME
    assert choose_feature_set(_with(store, model_name="fs-pin", model_versions="1"))[0] == "classic"
    pinned = _with(store, model_name="fs-pin", model_versions="2")
    assert choose_feature_set(pinned)[0] == "alpha158"
    unknown = _with(store, model_name="fs-pin", model_versions="9")
    assert choose_feature_set(unknown) == ("classic", "registry: fs-pin has no version 9")
