"""``tickcast train --side`` with FRED files into a fresh MLflow store (#22 item 3): the model it
registers records the ``classic+side`` set, and the worker would choose that set for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.scoring import load_model_set
from devtools.datasets import obtain
from sidestreams.feature_sets import named
from tickcast.config import Settings
from training import registry
from training.cli import app

pytestmark = pytest.mark.integration
NAME = "tickcast-direction-h1"
SIDE = Path(__file__).resolve().parents[1] / "fixtures" / "side"


def test_train_side_with_fred_files_registers_the_side_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = obtain("sp500-daily").parent.parent
    monkeypatch.setenv("TICKCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TICKCAST_SIDE_MACRO_SERIES", "GDPC1,UNRATE,realgdp")
    monkeypatch.delenv("TICKCAST_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TICKCAST_MLFLOW_ARTIFACT_ROOT", raising=False)
    args = [
        "--symbols", "12", "--splits", "2", "--n-estimators", "20", "--model", "xgboost",
        "--no-baselines", "--cache-dir", str(cache), "--side",
        "--side-macro", f"GDPC1={SIDE / 'fred_gdpc1_observations.json'}",
        "--side-macro", f"UNRATE={SIDE / 'fredgraph_unrate.csv'}",
        "--side-news", str(SIDE / "news_headlines.jsonl"),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    settings = Settings(data_dir=tmp_path, side_macro_series="GDPC1,UNRATE,realgdp")
    fs = named("classic+side", settings)
    champ = registry.champion(settings, NAME)
    assert champ is not None
    assert champ.tags["feature_set"] == "classic+side"
    assert champ.tags["feature_set_version"] == fs.version
    model_set = load_model_set(settings, NAME)  # what the worker loads: the side columns
    assert model_set.champion is not None
    assert tuple(model_set.champion.feature_names) == tuple(fs.names)
    assert {"macro_gdpc1", "macro_unrate_age_d", "macro_realgdp", "sector_ret"} <= set(fs.names)
    assert registry.feature_sets_in_use(settings, NAME) == ["classic+side"]
    report = json.loads(next((tmp_path / "reports").glob("*/walk_forward_h1.json")).read_text())
    assert report["feature_set_version"] == fs.version

    # a FRED file for a series the side columns do not use is refused, naming it
    bad = CliRunner().invoke(
        app, [*args, "--side-macro", f"PAYEMS={SIDE / 'fredgraph_unrate.csv'}"]
    )
    assert bad.exit_code != 0
    assert "PAYEMS" in bad.output + str(bad.exception)
