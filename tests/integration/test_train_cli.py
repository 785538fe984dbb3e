"""``tickcast train`` on 30 symbols of the real S&P 500 daily bars, into a fresh MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agents.scoring import ModelSet, Scorer, load_model_set, watch_aliases
from devtools.datasets import obtain
from indicators import FeatureSet
from tickcast.config import Settings
from training import registry
from training.cli import app

pytestmark = pytest.mark.integration
NAME = "tickcast-direction-h1"


def test_train_registers_a_champion_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = obtain("sp500-daily").parent.parent  # the shared data-set cache, before the patch
    monkeypatch.setenv("TICKCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TICKCAST_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TICKCAST_MLFLOW_ARTIFACT_ROOT", raising=False)
    args = ["--symbols", "30", "--splits", "3", "--n-estimators", "60", "--cache-dir", str(cache)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "held out for streaming" in " ".join(result.output.split()), result.output

    settings = Settings(data_dir=tmp_path)
    champ = registry.champion(settings, NAME)
    assert champ is not None
    assert champ.version == 1
    assert [c.version for c in registry.challengers(settings, NAME)] == [2]
    kinds = {champ.tags["model_kind"], registry.challengers(settings, NAME)[0].tags["model_kind"]}
    assert kinds == {"xgboost", "lightgbm"}

    reports = list((tmp_path / "reports").glob("*/walk_forward_h1.json"))
    assert len(reports) == 1
    assert reports[0].with_suffix(".html").stat().st_size > 10_000
    report = json.loads(reports[0].read_text())
    assert {"xgboost", "lightgbm", "zero_return"} <= set(report["aggregate"])
    assert report["feature_set_version"] == FeatureSet.default().version

    # the champion's walk-forward AUC is at least the challenger's (it was picked on it)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_uri)
    auc = {
        m.version: client.get_run(m.run_id).data.metrics["auc"]
        for m in [champ, *registry.challengers(settings, NAME)]
    }
    assert auc[1] >= auc[2]

    # what the stream will load scores the stream's feature vectors
    fs = FeatureSet.default()
    model_set = load_model_set(settings, NAME)
    assert model_set.champion is not None
    assert model_set.champion.reference is not None
    assert model_set.champion.reference["rsi_14"].count > 1000
    assert model_set.champion.reference["spread"].empty  # no quotes in daily bars
    assert model_set.champion.return_scale > 0
    scorer = Scorer(model_set, fs.version)
    rng = np.random.default_rng(0)
    rows = [
        {"symbol": "AAA", "ts": i, "feature_set_version": fs.version,
         "values": rng.normal(size=len(fs.names)).tolist(), "correlation_id": None}
        for i in range(10)
    ]  # fmt: skip
    preds = scorer.score(rows, now_ms=0)
    assert len(preds) == 20
    assert all(0.0 <= p["prob_up"] <= 1.0 for p in preds)

    # a second run finds the champion and adds a challenger only
    again = CliRunner().invoke(app, [*args, "--model", "xgboost", "--no-baselines"])
    assert again.exit_code == 0, again.output
    assert watch_aliases(settings, NAME) == (1, (3, 2))
    assert isinstance(model_set, ModelSet)


def test_train_registers_the_torch_and_time_series_models_and_they_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--models mlp,lstm,arima`` on 6 real symbols: walk-forward beside the baselines, all
    three registered, loaded back without torch, and scored with per-symbol state."""
    cache = obtain("sp500-daily").parent.parent
    monkeypatch.setenv("TICKCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TICKCAST_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TICKCAST_MLFLOW_ARTIFACT_ROOT", raising=False)
    args = ["--symbols", "6", "--splits", "2", "--models", "mlp,lstm,arima",
            "--cache-dir", str(cache)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    settings = Settings(data_dir=tmp_path)
    report = json.loads(next((tmp_path / "reports").glob("*/walk_forward_h1.json")).read_text())
    assert {"mlp", "lstm", "arima", "logistic", "zero_return"} <= set(report["aggregate"])
    for kind in ("mlp", "lstm", "arima"):
        assert 0.3 < report["aggregate"][kind]["auc"] < 0.7

    model_set = load_model_set(settings, NAME)
    models = [model_set.champion, *model_set.challengers]
    kinds = {m.predictor.kind: m for m in models if m is not None}  # type: ignore[attr-defined]
    assert set(kinds) == {"mlp", "lstm", "arima"}
    assert not kinds["mlp"].stateful
    assert kinds["lstm"].stateful
    assert kinds["arima"].stateful

    fs = FeatureSet.default()
    scorer = Scorer(model_set, fs.version)
    rng = np.random.default_rng(0)
    symbol = kinds["arima"].predictor.model.symbols  # type: ignore[attr-defined]
    known = sorted(symbol)[0]
    rows = [
        {"symbol": known, "ts": i, "feature_set_version": fs.version,
         "values": (rng.normal(size=len(fs.names)) * 0.01).tolist(), "correlation_id": None}
        for i in range(5)
    ]  # fmt: skip
    extra: dict[str, dict[str, object]] = {known: {}}
    batch = scorer.score_batch(rows, 0, extra)
    assert not batch.failures
    assert len(batch.predictions) == 15
    assert all(0.0 <= p["prob_up"] <= 1.0 for p in batch.predictions)
    assert {kinds["lstm"].state_key, kinds["arima"].state_key} == set(extra[known])
    arima = [
        p["prob_up"] for p in batch.predictions if p["model_version"] == str(kinds["arima"].version)
    ]
    assert len(set(arima)) > 1  # the forecast moves with each observed return


def test_train_registers_a_stack_and_a_tuned_model_and_they_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--models stack,xgboost --tune 3`` on 6 real symbols: the stack (out-of-fold meta
    learner) and ``xgboost_tuned`` (Optuna inside each training window) beside the untuned
    XGBoost and the baselines, both registered with their study / meta weights as run
    artifacts, loaded back as the worker loads them and scored in one micro-batch."""
    cache = obtain("sp500-daily").parent.parent
    monkeypatch.setenv("TICKCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TICKCAST_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TICKCAST_MLFLOW_ARTIFACT_ROOT", raising=False)
    args = ["--symbols", "6", "--splits", "2", "--models", "stack,xgboost", "--tune", "3",
            "--n-estimators", "40", "--cache-dir", str(cache)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    settings = Settings(data_dir=tmp_path)
    report = json.loads(next((tmp_path / "reports").glob("*/walk_forward_h1.json")).read_text())
    assert {"stack", "xgboost_tuned", "xgboost", "logistic", "zero_return"} <= set(
        report["aggregate"]
    )
    folds = {f["fold"]: f for f in report["folds"]}
    for row in report["model_details"]["xgboost_tuned"]:
        assert row["validation_end_ts"] < folds[row["fold"]]["test_start_ts"]
        assert row["best_params"]["n_estimators"] == 40
    for row in report["model_details"]["stack"]:
        assert row["oof_end_ts"] < folds[row["fold"]]["test_start_ts"]
    for kind in ("stack", "xgboost_tuned"):
        assert 0.4 < report["aggregate"][kind]["auc"] < 0.7

    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_uri)
    model_set = load_model_set(settings, NAME)
    models = [m for m in (model_set.champion, *model_set.challengers) if m is not None]
    kinds = {m.predictor.kind: m for m in models}  # type: ignore[attr-defined]
    assert set(kinds) == {"stack", "xgboost_tuned"}
    assert kinds["stack"].predictor.scoring_path == "stack"  # type: ignore[attr-defined]
    assert kinds["xgboost_tuned"].predictor.scoring_path == "xgboost"  # type: ignore[attr-defined]
    champ = registry.champion(settings, NAME)
    versions = [*([champ] if champ else []), *registry.challengers(settings, NAME)]
    run_id = next(v.run_id for v in versions if v.tags["model_kind"] == "xgboost_tuned")
    study_dir = client.download_artifacts(run_id, "report", str(tmp_path / "artifacts"))
    study = json.loads((Path(study_dir) / "fit_xgboost_tuned_h1.json").read_text())
    assert len(study["trials"]) == 3
    assert study["sampler"] == "TPESampler(seed=0)"

    fs = FeatureSet.default()
    scorer = Scorer(model_set, fs.version)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(8, len(fs.names))) * 0.01
    rows = [
        {"symbol": "AAA", "ts": i, "feature_set_version": fs.version,
         "values": values[i].tolist(), "correlation_id": None}
        for i in range(8)
    ]  # fmt: skip
    batch = scorer.score_batch(rows, 0, {"AAA": {}})
    assert not batch.failures
    assert len(batch.predictions) == 16
    stack = kinds["stack"]
    scored = [p["prob_up"] for p in batch.predictions if p["model_version"] == str(stack.version)]
    offline = stack.predictor.model.predict_proba(  # type: ignore[attr-defined]
        pd.DataFrame(values, columns=list(fs.names))
    )
    np.testing.assert_allclose(scored, offline, atol=1e-5)
