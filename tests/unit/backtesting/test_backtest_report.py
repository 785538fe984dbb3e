"""backtesting.report: strict JSON of every figure, HTML with the plots, MLflow logging; and a
run on real S&P 500 daily bars."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtesting.config import BacktestConfig
from backtesting.evaluate import BacktestReport, evaluate
from backtesting.report import (
    EXPERIMENT,
    FIGURES,
    ReportPaths,
    log_to_mlflow,
    report_dict,
    write_backtest_report,
)
from devtools.datasets import RegistryUnreachableError, load_sp500_daily
from tests.unit.backtesting.test_evaluate import STRATEGIES, make_bars, random_predictions
from tickcast.config import Settings
from tickcast.errors import DependencyError


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def report() -> BacktestReport:
    bars = make_bars()
    preds = pd.concat([random_predictions(bars), random_predictions(bars, seed=11, version="2")])
    cfg = BacktestConfig.model_validate(
        {"strategies": STRATEGIES, "cost_bps": 3, "rolling_window": 10}
    )
    return evaluate(preds, bars, cfg)


@pytest.fixture(scope="module")
def paths(report: BacktestReport, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return write_backtest_report(report, tmp_path_factory.mktemp("report"), "run/1")


def test_json_is_strict_and_holds_every_metric_of_every_run(
    report: BacktestReport, paths: ReportPaths
) -> None:
    assert paths.json.name == "backtest_run_1.json"
    doc = _strict(paths.json.read_text())
    assert isinstance(doc, dict)
    assert doc["run_id"] == "run/1"
    expected_runs = {"buy_and_hold"} | {
        f"{m}/{s}"
        for m in ("m@1", "m@2", "always_up@baseline", "prev_return_sign@baseline")
        for s in ("sign", "threshold_0.55_0.45", "top2_bottom2")
    }
    assert set(doc["metrics"]) == set(report.runs) == expected_runs
    for key, run in report.runs.items():
        stored = doc["metrics"][key]
        assert stored["strategy"] == run.strategy
        assert stored["kind"] == run.kind
        for name in report.meta["metric_names"]:
            value = run.metrics[name]
            got = stored[name]
            assert (got is None) if math.isnan(value) else got == pytest.approx(value), (key, name)
        series = doc["runs"][key]
        n = len(run.result.returns)
        for col in ("ts_ms", "net_return", "cost", "turnover", "equity", "drawdown"):
            assert len(series[col]) == n
        assert series["rolling_sharpe"][:9] == [None] * 9
        np.testing.assert_allclose(series["net_return"], run.result.returns)
        hist = doc["figures"]["return_distribution"][key]
        assert sum(hist["counts"]) == n
        assert hist["var_marks"]["var_hist_95"] == pytest.approx(-run.metrics["var_hist_95"])
        top = doc["figures"]["contributions"][key]["top"]
        assert list(top) == [str(s) for s in run.contributions.index[: len(top)]]
    assert set(doc["ic"]) == {"m@1", "m@2", "always_up@baseline", "prev_return_sign@baseline"}
    assert doc["metrics"]["always_up@baseline/sign"]["ic_mean"] is None  # constant signal
    assert doc["config"]["strategies"][2]["label"] == "top2_bottom2"


def test_report_dict_never_holds_nan(report: BacktestReport) -> None:
    text = json.dumps(report_dict(report, "x"), allow_nan=False)  # raises on NaN/inf
    assert "NaN" not in text
    assert "Infinity" not in text


def test_html_embeds_every_plot_and_the_table(report: BacktestReport, paths: ReportPaths) -> None:
    page = paths.html.read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == len(FIGURES) == 6
    for img in images:
        assert base64.b64decode(img.split('"', 1)[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for name in FIGURES:
        assert f'alt="{name}"' in page
    for key in report.runs:
        assert key in page
    for metric in ("sharpe", "sortino", "calmar", "cvar_hist_99", "rank_ic_mean", "turnover"):
        assert f"<th>{metric}</th>" in page


@pytest.mark.slow
def test_log_to_mlflow_records_metrics_params_and_artifacts(
    report: BacktestReport, paths: ReportPaths, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    settings = Settings(data_dir=tmp_path / "data")
    (tmp_path / "data" / "mlflow").mkdir(parents=True)
    run_id = log_to_mlflow(report, paths, settings, "m", "2")
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.tags["model_version"] == "2"
    own = report.runs["m@2/sign"].metrics
    assert run.data.metrics["sign.sharpe"] == pytest.approx(own["sharpe"])
    assert run.data.metrics["top2_bottom2.ic_mean"] == pytest.approx(own["ic_mean"])
    bh = report.runs["buy_and_hold"].metrics["sharpe"]
    assert run.data.metrics["buy_and_hold.sharpe"] == pytest.approx(bh)
    assert not any(k.startswith("m_1") for k in run.data.metrics)  # other versions stay out
    assert run.data.params["cost_bps"] == "3.0"
    names = {a.path for a in client.list_artifacts(run_id)}
    assert names == {paths.json.name, paths.html.name}
    with pytest.raises(ValueError, match="no run"):
        log_to_mlflow(report, paths, settings, "m", "9")


def test_unusable_mlflow_store_is_a_dependency_error(
    report: BacktestReport, paths: ReportPaths, tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path}/a_file/mlflow.db"
    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=uri)
    with pytest.raises(DependencyError) as err:
        log_to_mlflow(report, paths, settings, "m", "1")
    assert err.value.component == "mlflow"


@pytest.fixture(scope="module")
def sp500_50() -> pd.DataFrame:
    try:
        bars = load_sp500_daily()
    except RegistryUnreachableError as exc:  # offline machine: fails (never skips) with why
        pytest.fail(f"package registry unreachable (set-up needs it): {exc}")
    first = sorted(bars["symbol"].unique())[:50]
    return bars[bars["symbol"].isin(first)].reset_index(drop=True)


def test_real_sp500_bars_with_a_noisy_oracle(sp500_50: pd.DataFrame, tmp_path: Path) -> None:
    b = sp500_50.sort_values(["symbol", "ts_ms"])
    nxt = (b.groupby("symbol")["close"].shift(-1) / b["close"] - 1.0).fillna(0.0).to_numpy()
    rng = np.random.default_rng(42)
    noisy = nxt + rng.normal(0.0, 0.05, len(b))  # noise ~2.5x the daily volatility
    preds = pd.DataFrame(
        {
            "symbol": b["symbol"].to_numpy(),
            "ts": b["ts_ms"].to_numpy(),
            "model_name": "oracle",
            "model_version": "1",
            "role": "CHAMPION",
            "prob_up": 1.0 / (1.0 + np.exp(-noisy * 50.0)),
            "expected_return": noisy,
            "horizon": 1,
        }
    )
    cfg = BacktestConfig.model_validate(
        {"strategies": [*STRATEGIES[:2], {"kind": "top_bottom_k", "k": 5}], "cost_bps": 5}
    )
    rep = evaluate(preds, sp500_50, cfg)
    late = evaluate(preds.assign(ts=preds["ts"] + 1), sp500_50, cfg)
    paths = write_backtest_report(rep, tmp_path, "sp500")

    assert rep.meta["n_symbols"] == 50
    assert rep.meta["n_periods"] == sp500_50["ts_ms"].nunique() - 1
    sign = rep.runs["oracle@1/sign"].metrics
    assert sign["ic_mean"] > 0.1
    assert sign["ic_t"] > 10
    assert sign["sharpe"] > rep.runs["buy_and_hold"].metrics["sharpe"] + 2
    assert late.runs["oracle@1/sign"].metrics["sharpe"] < sign["sharpe"] - 2
    assert abs(late.runs["oracle@1/sign"].metrics["ic_mean"]) < 0.05
    assert _strict(paths.json.read_text())
    assert paths.html.stat().st_size > 50_000
