"""Grafana dashboards: generated files up to date, well formed, metric names all defined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitoring import dashboards
from monitoring.dashboards import (
    DASHBOARD_DIR,
    DASHBOARDS,
    dashboard_exprs,
    promql_metric_names,
    stale_dashboards,
    write_dashboards,
)
from tickcast.metrics import known_series

REQUIRED_KEYS = {"uid", "title", "panels", "schemaVersion", "templating", "time", "tags"}


def _problems(dashboard: dict[str, Any]) -> list[str]:
    """Every reason a dashboard is invalid (empty when it is fine)."""
    problems = [f"missing key {k}" for k in sorted(REQUIRED_KEYS - set(dashboard))]
    ids = [p["id"] for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    for panel in dashboard.get("panels", []):
        pos = panel["gridPos"]
        if pos["x"] + pos["w"] > 24:
            problems.append(f"panel {panel['title']} overflows the grid")
        if panel["type"] != "row" and not panel.get("targets"):
            problems.append(f"panel {panel['title']} has no query")
    known = known_series()
    for expr in dashboard_exprs(dashboard):
        names = promql_metric_names(expr)
        if not names:
            problems.append(f"no metric in {expr!r}")
        problems += [f"unknown metric {n} in {expr!r}" for n in sorted(names - known)]
    return problems


def test_committed_files_match_the_generator() -> None:
    assert stale_dashboards() == [], "run: python -m monitoring.dashboards"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_files_are_valid(name: str) -> None:
    dashboard = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    assert _problems(dashboard) == []
    assert len(dashboard["panels"]) >= 5


def test_dashboards_cover_the_required_views() -> None:
    exprs = {name: " ".join(dashboard_exprs(build())) for name, build in DASHBOARDS.items()}
    ops = exprs["tickcast-operations.json"]
    for needle in ("tickcast_events_total", "tickcast_stage_latency_ms_bucket",
                   "histogram_quantile(0.99", "tickcast_dead_letters_total",
                   "kafka_consumergroup_lag", "process_cpu_seconds_total",
                   "process_resident_memory_bytes"):  # fmt: skip
        assert needle in ops, needle
    models = exprs["tickcast-models.json"]
    for needle in ("model_accuracy", "tickcast_model_log_loss", "data_drift_psi",
                   "tickcast_model_info", "tickcast_feature_importance"):  # fmt: skip
        assert needle in models, needle
    business = exprs["tickcast-business.json"]
    for needle in ("daily_pnl_usd", "portfolio_sharpe_ratio", "portfolio_max_drawdown"):
        assert needle in business, needle


def test_a_renamed_metric_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = dashboards.business_dashboard()
    broken = json.loads(json.dumps(original).replace("daily_pnl_usd", "daily_pnl_dollars"))
    assert _problems(original) == []
    assert any("daily_pnl_dollars" in p for p in _problems(broken))


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    write_dashboards(tmp_path)
    assert dashboards.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "tickcast-business.json").write_text("{}")
    assert stale_dashboards(tmp_path) == ["tickcast-business.json"]
    assert dashboards.main(["--out", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        (
            'sum by (topic, reason) (rate(a_total{reason=~"x|y"}[5m])) / on (topic) b',
            {"a_total", "b"},
        ),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        ("time() - max by (model) (ts_seconds) > 300", {"ts_seconds"}),
        ('a and on (model) b{role="champion"} offset 5m', {"a", "b"}),
        ("topk(15, data_drift_psi) > bool 0.1", {"data_drift_psi"}),
        ("rate(x[1d]) * 1e3", {"x"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names
