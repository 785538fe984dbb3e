"""``tickcast train --model random_forest`` on real S&P 500 daily bars, into a fresh MLflow store.

The forest goes through the walk-forward beside the baselines, is registered as the champion
(signature, feature-set version, reference distributions), gets its SHAP summary page, and
is loaded back as the stream loads it: scored through its XGBoost booster, equal to
scikit-learn, and explained.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agents.scoring import Scorer, load_model_set
from devtools.datasets import obtain
from indicators import FeatureSet
from tickcast.config import Settings
from training import registry
from training.champion import PackagedModel
from training.cli import app

pytestmark = pytest.mark.integration
NAME = "tickcast-direction-h1"


def test_train_registers_a_random_forest_champion_that_scores_and_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = obtain("sp500-daily").parent.parent
    monkeypatch.setenv("TICKCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TICKCAST_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TICKCAST_MLFLOW_ARTIFACT_ROOT", raising=False)
    args = ["--symbols", "8", "--splits", "2", "--n-estimators", "30", "--model",
            "random_forest", "--cache-dir", str(cache)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    settings = Settings(data_dir=tmp_path)
    champ = registry.champion(settings, NAME)
    assert champ is not None
    assert champ.tags["model_kind"] == "random_forest"
    assert champ.tags["feature_set_version"] == FeatureSet.default().version
    report = json.loads(next((tmp_path / "reports").glob("*/walk_forward_h1.json")).read_text())
    assert {"random_forest", "logistic", "zero_return"} <= set(report["aggregate"])
    shap_page = next((tmp_path / "reports").glob("*/shap_random_forest_h1.html"))
    assert shap_page.read_text().count("<img") == 1

    model_set = load_model_set(settings, NAME)
    champion = model_set.champion
    assert champion is not None
    assert champion.reference is not None
    packaged = champion.predictor
    assert isinstance(packaged, PackagedModel)
    assert packaged.scoring_path == "forest"

    fs = FeatureSet.default()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, len(fs.names)))
    X[:5] = np.nan  # warm-up rows
    reference = packaged.model.predict_proba(pd.DataFrame(X, columns=list(fs.names)))
    np.testing.assert_allclose(packaged.predict_proba(X), reference, rtol=0, atol=1e-5)
    rows = [
        {"symbol": "AAA", "ts": i, "feature_set_version": fs.version,
         "values": X[i].tolist(), "correlation_id": None}
        for i in range(len(X))
    ]  # fmt: skip
    preds = Scorer(model_set, fs.version, 3).score(rows, now_ms=0)  # type: ignore[arg-type]
    assert len(preds) == len(X)
    for pred in preds:
        assert len(pred["explanation_features"] or []) == 3
        assert set(pred["explanation_features"] or []) <= set(fs.names)
