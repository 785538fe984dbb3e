"""The Alertmanager configuration: amtool checks it with its template, routes each severity
to its receivers, and its inhibitions name alerts that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"


def _amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail("amtool not found on PATH; install the 'prometheus-alertmanager' package")
    return path


def _local_copy(tmp_path: Path, templates: str) -> Path:
    """The config with its templates read from ``templates`` (the deployed path is /etc)."""
    text = CONFIG.read_text(encoding="utf-8").replace(
        "/etc/alertmanager/templates/*.tmpl", templates
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _amtool_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_amtool(), *args], capture_output=True, text=True, timeout=60)


def test_amtool_checks_the_config_with_its_template(tmp_path: Path) -> None:
    config = _local_copy(tmp_path, str(MONITORING / "alertmanager" / "*.tmpl"))
    done = _amtool_run("check-config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 inhibit rules" in done.stdout
    assert "1 templates" in done.stdout


def test_a_broken_template_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "broken.tmpl").write_text('{{ define "x" }}{{ .Labels', encoding="utf-8")
    config = _local_copy(tmp_path, str(tmp_path / "*.tmpl"))
    done = _amtool_run("check-config", str(config))
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=DependencyDown"], "pagerduty,team-webhook"),
        (["severity=critical", "alertname=PredictionsStopped"], "pagerduty,team-webhook"),
        (["severity=warning", "alertname=DataDriftWarning"], "team-webhook"),
        (["alertname=SomethingNew"], "team-webhook"),
    ],
)
def test_each_severity_reaches_its_receivers(
    tmp_path: Path, labels: list[str], receivers: str
) -> None:
    config = _local_copy(tmp_path, str(MONITORING / "alertmanager" / "*.tmpl"))
    done = _amtool_run("config", "routes", "test", f"--config.file={config}", *labels)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receivers


def test_inhibitions_and_groups_name_alerts_and_labels_the_rules_have() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    named: set[str] = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            assert match is not None, matcher
            named.update(match.group(1).split("|"))
    assert named <= alerts, named - alerts
    assert {"DependencyDown", "TargetDown"} <= named  # causes silence their symptoms
    secret = config["receivers"][0]["pagerduty_configs"][0]
    assert "routing_key" not in secret  # the key is a mounted file, never inline
    assert secret["routing_key_file"].startswith("/etc/alertmanager/secrets/")
