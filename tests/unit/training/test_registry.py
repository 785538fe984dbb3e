"""Registry round trip on a real MLflow sqlite store in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickcast.config import Settings
from tickcast.errors import ModelError
from training.champion import PackagedModel, ScoringModel
from training.models import make_model
from training.reference import reference_from_matrix
from training.registry import (
    CHALLENGER,
    CHAMPION,
    challengers,
    champion,
    default_name,
    load_scoring_model,
    promote,
    register,
    retire,
    set_alias,
    watch_aliases,
)

NAMES = tuple(f"f{i}" for i in range(6))
VERSION = "fsv-test"


def _data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(NAMES)))
    X[rng.random(X.shape) < 0.05] = np.nan  # warm-up gaps the boosters must handle
    y = (np.nan_to_num(X[:, 0]) + 0.5 * rng.standard_normal(n) > 0).astype(int)
    return X, y


def _packaged(kind: str, seed: int = 0) -> PackagedModel:
    X, y = _data(seed)
    model = make_model(kind, seed, {"n_estimators": 15})
    model.fit(pd.DataFrame(X, columns=list(NAMES)), y)
    return PackagedModel(kind, model, NAMES, VERSION, 1, 0.0123, (0, 400))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, mlflow_tracking_uri="", mlflow_artifact_root="")


def _register(settings: Settings, kind: str, tmp_path: Path, **kw: object) -> object:
    report = tmp_path / f"report_{kind}.json"
    report.write_text('{"ok": true}')
    X, _ = _data()
    return register(
        _packaged(kind),
        name=default_name(1),
        horizon=1,
        params={"model": {"n_estimators": 15}},
        metrics={"auc": 0.61, "sharpe": float("nan")},
        report_paths=[report],
        reference=reference_from_matrix(X, NAMES, VERSION),
        settings=settings,
        sample=X[:20],
        **kw,  # type: ignore[arg-type]
    )


def test_round_trip_aliases_promotion_and_identical_predictions(
    settings: Settings, tmp_path: Path
) -> None:
    name = default_name(1)
    assert watch_aliases(settings, name) == (None, ())
    assert champion(settings, name) is None
    assert challengers(settings, name) == []

    first = _register(settings, "xgboost", tmp_path)
    second = _register(settings, "lightgbm", tmp_path)
    third = _register(settings, "xgboost", tmp_path)
    assert (first.version, first.role) == (1, CHAMPION)  # type: ignore[attr-defined]
    assert (second.version, second.role) == (2, CHALLENGER)  # type: ignore[attr-defined]
    assert third.role == CHALLENGER  # type: ignore[attr-defined]
    assert champion(settings, name).version == 1  # type: ignore[union-attr]
    assert [c.version for c in challengers(settings, name)] == [3, 2]
    assert watch_aliases(settings, name) == (1, (3, 2))

    # artifacts live under the configured artifact root, with the report and reference
    artifacts = Path(settings.mlflow_artifacts)
    assert list(artifacts.rglob("report_xgboost.json"))
    assert list(artifacts.rglob("reference.json"))

    # loading gives back our object: same predictions as the in-memory model
    X, _ = _data(seed=5, n=300)
    loaded = load_scoring_model(settings, name, 2)
    assert isinstance(loaded, ScoringModel)
    assert (loaded.version, loaded.role, loaded.feature_set_version) == (2, CHALLENGER, VERSION)
    assert loaded.feature_names == NAMES
    assert loaded.horizon == 1
    assert loaded.return_scale == pytest.approx(0.0123)
    np.testing.assert_array_equal(loaded.predict_proba(X), _packaged("lightgbm").predict_proba(X))
    direct = _packaged("lightgbm").model.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose(loaded.predict_proba(X), direct, rtol=1e-12)
    assert loaded.reference is not None
    assert loaded.reference.names == list(NAMES)
    assert loaded.reference["f0"].count == int(np.isfinite(_data()[0][:, 0]).sum())

    old, new = promote(settings, name, 2, reason="paired test p=0.01")
    assert old is not None
    assert old.version == 1
    assert old.role == CHALLENGER
    assert new.version == 2
    assert new.role == CHAMPION
    assert new.tags["promotion_reason"] == "paired test p=0.01"
    assert watch_aliases(settings, name) == (2, (3, 1))
    assert load_scoring_model(settings, name, 1).role == CHALLENGER
    assert promote(settings, name, 2, reason="again")[1].version == 2  # no-op

    retire(settings, name, 3, reason="stale")
    assert watch_aliases(settings, name) == (2, (1,))
    with pytest.raises(ModelError):
        retire(settings, name, 2, reason="is champion")
    with pytest.raises(ModelError):
        promote(settings, name, 99, reason="no such version")
    with pytest.raises(ModelError):
        load_scoring_model(settings, "no-such-model", 1)

    set_alias(settings, name, "canary", 1)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    assert int(client.get_model_version_by_alias(name, "canary").version) == 1
    assert int(client.get_model_version_by_alias(name, CHALLENGER).version) == 1
    run = client.get_run(first.run_id)  # type: ignore[attr-defined]
    assert run.data.params["feature_set_version"] == VERSION
    assert run.data.params["model.n_estimators"] == "15"
    assert run.data.metrics == {"auc": 0.61}
    assert run.data.tags["features"] == ",".join(NAMES)


def test_forced_role_and_mismatched_feature_set(settings: Settings, tmp_path: Path) -> None:
    reg = _register(settings, "lightgbm", tmp_path, role="challenger")
    assert reg.role == CHALLENGER  # type: ignore[attr-defined]
    assert watch_aliases(settings, default_name(1)) == (None, (1,))

    class OtherSet:
        version = "another-version"

    with pytest.raises(ModelError):
        _register(settings, "xgboost", tmp_path, feature_set=OtherSet())


def test_down_registry_is_not_an_unset_alias(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable server names the /alias URL in its error; that must not read as "no
    champion" (an online promotion then failed with no_champion instead of retrying)."""
    from tests.support.ports import free_port
    from tickcast.errors import DependencyError

    assert watch_aliases(settings, "never-registered") == (None, ())  # missing: no champion
    assert champion(settings, "never-registered") is None
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(DependencyError):
        champion(down, "tickcast-direction-h1")
