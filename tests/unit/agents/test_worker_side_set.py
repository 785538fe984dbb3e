"""``NAME+side`` sets in the worker (#22): chosen explicitly, by the side switch, or because a
registered model was trained on one (its ``feature_set`` tag); a real MLflow sqlite store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.side_inputs import SideFeatureEngine
from agents.worker import build_stage, build_worker_app, choose_feature_set
from sidestreams.feature_sets import named
from tickcast.config import Settings
from tickcast.errors import ConfigError
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.models import make_model
from training.registry import feature_sets_in_use, register


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path, mlflow_tracking_uri="", mlflow_artifact_root="",
                    online_shadow_models="", side_macro_series="realgdp", **kw)  # type: ignore[arg-type]  # fmt: skip


def test_an_explicit_or_switched_on_side_set_is_computed(tmp_path: Path) -> None:
    explicit = _settings(tmp_path, feature_set="alpha158+side", scoring_enabled=False)
    assert choose_feature_set(explicit) == ("alpha158+side", "TICKCAST_FEATURE_SET")
    stage = build_stage(explicit, Metrics())
    assert isinstance(stage.engine, SideFeatureEngine)
    assert stage.engine.feature_set.names == named("alpha158+side", explicit).names
    switched = _settings(tmp_path, side_features=True, scoring_enabled=False)
    stage = build_stage(switched, Metrics())
    assert stage.engine.version == named("classic+side", switched).version
    plain = build_stage(_settings(tmp_path, scoring_enabled=False), Metrics())
    assert not isinstance(plain.engine, SideFeatureEngine)


def test_a_model_trained_with_side_features_records_and_selects_its_set(tmp_path: Path) -> None:
    settings = _settings(tmp_path, model_name="side-model")
    fs = named("classic+side", settings)
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.standard_normal((200, len(fs))), columns=list(fs.names))
    model = make_model("xgboost", 1, {"n_estimators": 3, "max_depth": 2})
    model.fit(X, (X.iloc[:, 0] > 0).astype(int))
    packaged = PackagedModel("xgboost", model, fs.names, fs.version, 1, 0.004, (0, 1))
    register(packaged, name="side-model", feature_set=fs, settings=settings)
    assert feature_sets_in_use(settings, "side-model") == ["classic+side"]
    assert choose_feature_set(settings)[0] == "classic+side"
    stage = build_stage(settings, Metrics())
    assert stage.engine.feature_set.names == fs.names


def test_the_faust_runner_refuses_the_broadcast_sector_board(tmp_path: Path) -> None:
    settings = _settings(tmp_path, side_features=True, scoring_enabled=False,
                         side_sector_sync=True)  # fmt: skip
    with pytest.raises(ConfigError, match="direct runner"):
        build_worker_app(settings, Metrics())
    off = settings.model_copy(update={"side_sector_sync": False})
    assert build_stage(off, Metrics()).engine.side_inputs.sync is None  # type: ignore[attr-defined]
