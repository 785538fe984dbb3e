"""Prometheus alert rules: promtool checks and unit tests, and their metric names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.dashboards import promql_metric_names
from tickcast.metrics import known_series

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:  # a project requirement (the Makefile installs it): fail, never skip
        pytest.fail("promtool not found on PATH; install the 'prometheus' package")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=MONITORING, capture_output=True, text=True, timeout=120
    )


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = _run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = _run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_example_config() -> None:
    result = _run("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_detects_a_broken_rule(tmp_path: Path) -> None:
    # The unit tests must bite: raising the PSI threshold makes them fail.
    broken = RULES.read_text().replace("data_drift_psi > 0.25", "data_drift_psi > 0.9")
    assert broken != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / "alerts_test.yml")
    result = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DataDriftCritical" in result.stdout + result.stderr


def test_required_alerts_exist_with_severity_and_runbook() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    required = {
        "KafkaConsumerLagGrowing", "StageLatencyP95OverBudget", "DeadLetterRateHigh",
        "DataDriftCritical", "DataDriftWarning", "PredictionsStale", "DependencyDown",
        "TargetDown",
    }  # fmt: skip
    assert required <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["runbook"].startswith("docs/operations.md#"), name
    assert "histogram_quantile" in rules["StageLatencyP95OverBudget"]["expr"]
    assert "_bucket" in rules["StageLatencyP95OverBudget"]["expr"]


def test_alert_exprs_use_only_defined_metrics() -> None:
    known = known_series()
    for rule in _rules():
        names = promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, (rule["alert"], names - known)


def test_every_alert_has_firing_and_quiet_cases() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t.get("alert_rule_test", [])]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']}: no quiet case"
