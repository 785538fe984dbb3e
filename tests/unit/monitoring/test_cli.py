"""``tickcast lag`` and ``tickcast metrics-summary`` as the top-level app mounts them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from monitoring import cli as cli_mod
from monitoring import lag as lag_mod
from monitoring.cli import SERVE_INTERVAL_S, WATCH_INTERVAL_S, lag_app, metrics_summary
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.metrics import Metrics, serve_metrics

TP = tuple[str, int]


class FakeOffsets:
    """Stands in for monitoring.lag.KafkaOffsets (same constructor and methods)."""

    fail = False

    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap

    def list_groups(self) -> list[str]:
        if self.fail:
            raise RuntimeError("KafkaError{code=_TRANSPORT}")
        return ["audit", "tickcast"]

    def committed(self, group: str) -> dict[TP, int]:
        if self.fail:
            raise RuntimeError("KafkaError{code=_TRANSPORT}")
        return {"tickcast": {("ticks", 0): 90, ("ticks", 1): 100}, "audit": {("ticks", 0): 1}}.get(
            group, {}
        )

    def watermarks(self, partitions: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        return dict.fromkeys(partitions, (0, 100))


class DownOffsets(FakeOffsets):
    fail = True


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(cli_mod, "_settings", lambda service: Settings())
    monkeypatch.setattr(lag_mod, "KafkaOffsets", FakeOffsets)
    root = typer.Typer()
    root.add_typer(lag_app, name="lag")
    root.command("metrics-summary")(metrics_summary)
    return root


def _invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def test_lag_prints_one_table(app: typer.Typer) -> None:
    result = _invoke(app, "lag")
    assert result.exit_code == 0, result.output
    assert "total: audit=99, tickcast=10" in result.output
    named = _invoke(app, "lag", "--group", "tickcast", "-g", "tickcast")
    assert named.exit_code == 0, named.output
    assert "total: tickcast=10" in named.output
    assert "audit" not in named.output
    missing = _invoke(app, "lag", "--group", "nobody")
    assert "no committed offsets for nobody" in missing.output


def test_lag_with_the_broker_down_raises_a_dependency_error(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lag_mod, "KafkaOffsets", DownOffsets)
    result = _invoke(app, "lag")
    assert isinstance(result.exception, DependencyError)  # main() prints it as one line
    assert str(result.exception).startswith("kafka: cannot read offsets from 127.0.0.1:19092")
    assert "is the broker up?" in str(result.exception)


def test_watch_and_serve_pass_their_options(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any, dict[str, Any]]] = []
    monkeypatch.setattr(lag_mod, "watch_lag", lambda b, g, **kw: calls.append(("watch", g, kw)))
    monkeypatch.setattr(
        lag_mod, "run_lag_exporter", lambda b, g, **kw: calls.append(("serve", g, kw))
    )
    assert _invoke(app, "lag", "--watch").exit_code == 0
    assert _invoke(app, "lag", "--watch", "--interval", "0.5", "-g", "a").exit_code == 0
    result = _invoke(app, "lag", "--serve", "9399", "--group", "a", "--group", "b")
    assert result.exit_code == 0, result.output
    assert "lag exporter: http://127.0.0.1:9399/metrics" in result.output  # loopback by default
    assert calls[0][0] == "watch"
    assert calls[0][1] is None
    assert calls[0][2]["interval_s"] == WATCH_INTERVAL_S
    assert (calls[1][1], calls[1][2]["interval_s"]) == (["a"], 0.5)
    assert calls[2][0] == "serve"
    assert calls[2][1] == ["a", "b"]
    assert (calls[2][2]["port"], calls[2][2]["interval_s"]) == (9399, SERVE_INTERVAL_S)
    assert calls[2][2]["addr"] == "127.0.0.1"  # TICKCAST_METRICS_HOST's default


def test_watch_and_serve_together_is_a_usage_error(app: typer.Typer) -> None:
    result = _invoke(app, "lag", "--watch", "--serve", "9399")
    assert result.exit_code == 2
    assert "choose one of --watch and --serve" in result.output


def test_metrics_summary_table_and_json(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    m = Metrics()
    m.record_events("ticks", "in", 7)
    m.record_dead_letter("ticks", "BAD_RANGE", 2)
    with m.stage_timer("features"):
        pass
    server = serve_metrics(0, m.registry, "127.0.0.1")
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        table = _invoke(app, "metrics-summary", "--url", url)
        raw = _invoke(app, "metrics-summary", "--url", url, "--json")
    finally:
        server.close()
    assert table.exit_code == 0, table.output
    assert "BAD_RANGE" in table.output
    assert "stage latency" in table.output
    data = json.loads(raw.output)
    assert data["events"]["ticks"]["in"] == 7
    assert data["dead_letters"] == {"ticks": {"BAD_RANGE": 2.0}}
    assert data["stages"]["features"]["batches"] == 1
    assert data["lag_total"] == {"tickcast": 10}  # the fake broker, group of Settings()
