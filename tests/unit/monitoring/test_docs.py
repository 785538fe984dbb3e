"""docs/operations.md documents every metric and every alert."""

from __future__ import annotations

from pathlib import Path

import yaml

from tickcast.metrics import SPECS

ROOT = Path(__file__).resolve().parents[3]


def test_every_metric_and_alert_is_documented() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [s.name for s in SPECS if f"`{s.name}`" not in text]
    assert missing == []
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())["groups"]
    alerts = [r["alert"] for g in rules for r in g["rules"]]
    assert [a for a in alerts if f"`{a}`" not in text] == []


def test_module_doctests_pass() -> None:
    import doctest

    from monitoring import dashboards, lag
    from tickcast import metrics

    for module in (metrics, lag, dashboards):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
