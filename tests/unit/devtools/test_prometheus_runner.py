"""The Prometheus runner's generated files (checked by promtool) and the new modules' doctests."""

from __future__ import annotations

import doctest
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools import prometheus_runner
from devtools.prometheus_runner import ALERTS, PrometheusRunner, free_port, rules_with_for
from monitoring import summary
from streams import correlation
from tickcast.errors import DependencyError


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found on PATH; install the 'prometheus' package")
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _rules(text: str) -> list[dict[str, object]]:
    return [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]


def test_rules_with_for_only_changes_for(tmp_path: Path) -> None:
    original = ALERTS.read_text()
    rewritten = rules_with_for(original, "0s")
    before, after = _rules(original), _rules(rewritten)
    assert [r["alert"] for r in after] == [r["alert"] for r in before]
    assert all(r["for"] == "0s" for r in after)
    for old, new in zip(before, after, strict=True):
        assert {k: v for k, v in new.items() if k != "for"} == {
            k: v for k, v in old.items() if k != "for"
        }
    assert rules_with_for(original, None) == original
    (tmp_path / "rules.yml").write_text(rewritten)
    result = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_written_config_passes_promtool(tmp_path: Path) -> None:
    runner = PrometheusRunner(
        {"tickcast-worker": "127.0.0.1:9101", "tickcast-lag": ["127.0.0.1:9308", "h:1"]},
        rule_for="0s",
        workdir=tmp_path,
        port=free_port(),
    )
    config = runner.write_config()
    doc = yaml.safe_load(config.read_text())
    assert doc["global"]["scrape_interval"] == "1000ms"
    assert doc["global"]["evaluation_interval"] == "1000ms"
    assert doc["rule_files"] == [str(tmp_path / "rules.yml")]
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in doc["scrape_configs"]}
    assert jobs == {"tickcast-worker": ["127.0.0.1:9101"],
                    "tickcast-lag": ["127.0.0.1:9308", "h:1"]}  # fmt: skip
    result = _promtool("check", "config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_missing_binary_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_runner.shutil, "which", lambda _: None)
    monkeypatch.setattr(prometheus_runner, "Path", lambda _: Path("/nonexistent/prometheus"))
    with pytest.raises(DependencyError, match="install-system-deps"):
        prometheus_runner.prometheus_binary()


def test_new_module_doctests_pass() -> None:
    for module in (summary, correlation, prometheus_runner):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
