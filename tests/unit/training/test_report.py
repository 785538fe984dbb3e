"""The report carries every figure (JSON) and renders plots and tables (HTML)."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest

from tests.unit.training.synthetic import StandInFeatureSet, make_bars, standin_compute
from training.report import write_report
from training.walk_forward import WalkForwardConfig, WalkForwardResult, run_walk_forward


@pytest.fixture(scope="module")
def result() -> WalkForwardResult:
    cfg = WalkForwardConfig(
        n_splits=3,
        models=("xgboost", "logistic", "always_up", "zero_return"),
        model_params={"xgboost": {"n_estimators": 20}},
    )
    bars = make_bars(150, symbols=("A", "B", "C"), signal=0.5, seed=8)
    return run_walk_forward(bars, StandInFeatureSet(), cfg, compute=standin_compute)


def test_json_has_every_figure(result: WalkForwardResult, tmp_path: Path) -> None:
    paths = write_report(result, tmp_path / "out")
    doc = json.loads(paths.json.read_text())
    assert set(doc["aggregate"]) == {"xgboost", "logistic", "always_up", "zero_return"}
    for name, metrics in result.aggregate.items():
        for key, value in metrics.items():
            stored = doc["aggregate"][name][key]
            assert (stored is None and math.isnan(value)) or stored == pytest.approx(value)
    assert len(doc["fold_metrics"]) == 3 * 4
    assert len(doc["folds"]) == 3
    curve = doc["strategy_returns"]["xgboost"]
    assert (
        len(curve["ts_ms"]) == len(curve["net_return"]) == len(result.strategy_returns["xgboost"])
    )
    assert doc["config"]["n_splits"] == 3
    assert doc["point_in_time"]["features"] == list(StandInFeatureSet().names)


def test_html_embeds_plots_and_table(result: WalkForwardResult, tmp_path: Path) -> None:
    page = write_report(result, tmp_path).html.read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 2
    for img in images:
        assert base64.b64decode(img.split('"', 1)[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("xgboost", "logistic", "always_up", "zero_return", "accuracy_vs_best_naive"):
        assert name in page
