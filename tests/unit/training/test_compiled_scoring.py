"""The scoring fast path of :class:`PackagedModel`: LightGBM compiled by lleaves, checked
against ``lightgbm.Booster.predict`` (the independent reference), its on-disk cache, and the
fallbacks to ``Booster.predict`` when compiling fails or disagrees."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from tickcast.config import Settings
from training import compiled_trees
from training.champion import PackagedModel
from training.models import make_model
from training.reference import reference_from_matrix
from training.registry import default_name, load_scoring_model, register

NAMES = tuple(f"f{i}" for i in range(8))
VERSION = "fsv-compiled"
#: Reordered float sums only (see training.compiled_trees.TOLERANCE); far below any signal.
ATOL = compiled_trees.TOLERANCE


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(NAMES))) * np.array([1, 10, 0.01, 1e4, 1, 1, 1, 1])
    X[:, 5] = np.abs(X[:, 5])  # a feature that never has NaN in training (missing type None)
    warm = rng.random(X.shape) < 0.08
    warm[:, 5] = False
    X[warm] = np.nan  # warm-up gaps, as the stream sends them
    X[rng.random(n) < 0.05, 6] = 0.0  # exact zeros are routed specially by LightGBM
    signal = np.nan_to_num(X[:, 0]) + 0.1 * np.nan_to_num(X[:, 1]) - X[:, 5]
    y = (signal + 0.7 * rng.standard_normal(n) > -0.8).astype(int)
    return X, y


def _packaged(kind: str = "lightgbm", seed: int = 0, trees: int = 80) -> PackagedModel:
    X, y = _data(seed, 3000)
    model = make_model(kind, seed, {"n_estimators": trees})
    model.fit(pd.DataFrame(X, columns=list(NAMES)), y)
    return PackagedModel(kind, model, NAMES, VERSION, 1, 0.01, (0, 3000))


def _booster(packaged: PackagedModel) -> object:
    return packaged.model.estimator.booster_


def _scoring_rows() -> np.ndarray:
    """Held-out rows plus the awkward ones: all-NaN, zeros, LightGBM's zero band, subnormals."""
    X, _ = _data(seed=99, n=4000)
    awkward = np.array(
        [
            [np.nan] * len(NAMES),
            [0.0] * len(NAMES),
            [compiled_trees.ZERO_THRESHOLD] * len(NAMES),
            [-compiled_trees.ZERO_THRESHOLD] * len(NAMES),
            [-5e-324] * len(NAMES),
            [1e300] * len(NAMES),
            [-1e300] * len(NAMES),
        ]
    )
    return np.vstack([X, awkward])


@pytest.fixture(scope="module")
def lightgbm_model() -> PackagedModel:
    return _packaged()


def test_compiled_lightgbm_matches_booster_predict(
    lightgbm_model: PackagedModel, tmp_path: Path
) -> None:
    packaged = pickle.loads(pickle.dumps(lightgbm_model))
    assert packaged.prepare(compiled_trees.cache_dir(tmp_path)) == "lleaves"
    assert packaged.scoring_path == "lleaves"
    X = _scoring_rows()
    got = packaged.predict_proba(X)
    reference = np.asarray(_booster(lightgbm_model).predict(X))  # type: ignore[attr-defined]
    assert got.shape == reference.shape == (len(X),)
    np.testing.assert_allclose(got, reference, rtol=0, atol=ATOL)
    # the check can fail: the model really varies across these rows, NaN rows included
    assert np.ptp(reference) > 0.2
    assert np.isfinite(got).all()
    # and the caller's matrix is not touched by the zero-band handling
    assert X[-5, 0] == compiled_trees.ZERO_THRESHOLD


def test_zero_band_is_read_as_zero_like_lightgbm(tmp_path: Path) -> None:
    """A split at -1e-35 (LightGBM's own zero threshold) is where lleaves alone would differ."""
    rng = np.random.default_rng(3)
    n = 2000
    x = rng.choice([-1.0, 0.0, 1.0], size=n)
    y = (x < 0).astype(int) ^ (rng.random(n) < 0.05)
    model = make_model("lightgbm", 0, {"n_estimators": 5, "min_child_samples": 5})
    frame = pd.DataFrame({"a": x, "b": rng.standard_normal(n)})
    model.fit(frame, y)
    packaged = PackagedModel("lightgbm", model, ("a", "b"), VERSION, 1, 0.01)
    booster = packaged.model.estimator.booster_
    tiny = compiled_trees.ZERO_THRESHOLD
    X = np.array([[-tiny, 0.3], [tiny, 0.3], [0.0, 0.3], [-1.0, 0.3], [-5e-324, 0.3]])
    assert -tiny in compiled_trees.split_thresholds(booster.model_to_string(), 2)[0]
    compiled = compiled_trees.compile_lightgbm(booster, compiled_trees.cache_dir(tmp_path))
    np.testing.assert_allclose(
        compiled_trees.predict(compiled, X), booster.predict(X), rtol=0, atol=ATOL
    )
    # -tiny scores as 0.0 does, not as -1.0 (what a raw comparison at the split would give)
    scores = compiled_trees.predict(compiled, X)
    assert scores[0] == scores[2]
    assert abs(scores[0] - scores[3]) > 0.1


def test_cached_forest_is_loaded_without_compiling(
    lightgbm_model: PackagedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = compiled_trees.cache_dir(tmp_path)
    first = pickle.loads(pickle.dumps(lightgbm_model))
    assert first.prepare(directory) == "lleaves"
    objects = sorted(directory.glob("*.o"))
    assert len(objects) == 1
    assert not list(directory.glob(".*"))  # no temp files left behind
    stamp = objects[0].stat().st_mtime_ns

    import lleaves.compiler

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("recompiled although the forest was cached")

    monkeypatch.setattr(lleaves.compiler, "compile_to_module", refuse)
    restarted = pickle.loads(pickle.dumps(lightgbm_model))  # as after a restart
    assert restarted.prepare(directory) == "lleaves"
    assert objects[0].stat().st_mtime_ns == stamp
    X = _scoring_rows()
    np.testing.assert_array_equal(restarted.predict_proba(X), first.predict_proba(X))

    # another model gets its own key, so it cannot be served the first one's code
    other = _packaged(seed=1)
    key = compiled_trees.cache_key(_booster(other).model_to_string())  # type: ignore[attr-defined]
    assert not (directory / f"lightgbm-{key}.o").exists()


def test_failed_compile_falls_back_to_booster_predict(
    lightgbm_model: PackagedModel, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "compiled-models"
    not_a_dir.write_text("a file where the cache directory should be")
    packaged = pickle.loads(pickle.dumps(lightgbm_model))
    with capture_logs() as logs:
        assert packaged.prepare(not_a_dir) == "lightgbm"
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["lightgbm_compile_failed"]
    X = _scoring_rows()
    reference = _booster(lightgbm_model).predict(X)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(packaged.predict_proba(X), reference)


def test_wrong_cached_forest_is_caught_and_not_used(
    lightgbm_model: PackagedModel, tmp_path: Path
) -> None:
    """A cached object that is not this model's (stale, swapped) fails the probe check."""
    directory = compiled_trees.cache_dir(tmp_path)
    other = _packaged(seed=1)
    assert other.prepare(directory) == "lleaves"
    (other_object,) = directory.glob("*.o")
    key = compiled_trees.cache_key(
        _booster(lightgbm_model).model_to_string()  # type: ignore[attr-defined]
    )
    shutil.copy(other_object, directory / f"lightgbm-{key}.o")
    packaged = pickle.loads(pickle.dumps(lightgbm_model))
    with capture_logs() as logs:
        assert packaged.prepare(directory) == "lightgbm"
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == "lightgbm_compiled_mismatch"
    assert warning["max_deviation"] > ATOL


def test_without_a_cache_dir_and_for_xgboost_nothing_is_compiled(tmp_path: Path) -> None:
    lgbm = _packaged(trees=10)
    assert lgbm.prepare() == "lightgbm"
    xgb = _packaged("xgboost", trees=10)
    assert xgb.prepare(compiled_trees.cache_dir(tmp_path)) == "xgboost"
    assert not compiled_trees.cache_dir(tmp_path).exists()
    # the XGBoost fast path is unchanged: inplace_predict equals the sklearn API
    X = _scoring_rows()
    direct = xgb.model.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose(xgb.predict_proba(X), direct, rtol=0, atol=1e-7)


def test_registry_load_compiles_into_the_data_dir(
    lightgbm_model: PackagedModel, tmp_path: Path
) -> None:
    overrides: dict[str, Any] = {"mlflow_tracking_uri": "", "mlflow_artifact_root": ""}
    settings = Settings(data_dir=tmp_path, **overrides)
    X, _ = _data(seed=0, n=200)
    registered = register(
        lightgbm_model,
        name=default_name(1),
        horizon=1,
        reference=reference_from_matrix(X, NAMES, VERSION),
        settings=settings,
        sample=X[:20],
    )
    loaded = load_scoring_model(settings, registered.name, registered.version)
    assert loaded.predictor.scoring_path == "lleaves"  # type: ignore[attr-defined]
    assert list(compiled_trees.cache_dir(tmp_path).glob("lightgbm-*.o"))
    rows = _scoring_rows()
    reference = _booster(lightgbm_model).predict(rows)  # type: ignore[attr-defined]
    np.testing.assert_allclose(loaded.predict_proba(rows), reference, rtol=0, atol=ATOL)
