"""The metrics summary: quantiles as Prometheus computes them, counts, lag, rendering."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest
from rich.console import Console

from monitoring import summary as mod
from monitoring.lag import LagRow
from monitoring.summary import histogram_quantile, print_summary, render_summary, summary
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.metrics import LATENCY_BUCKETS_MS, Metrics, serve_metrics

INF = float("inf")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found on PATH; install the 'prometheus' package")
    return path


def test_quantiles_agree_with_prometheus_itself(tmp_path: Path) -> None:
    """promtool evaluates histogram_quantile on the same buckets and must get the same floats."""
    rng = np.random.default_rng(5)
    bounds = [*LATENCY_BUCKETS_MS, INF]
    cases = []
    for case in range(6):
        observations = rng.lognormal(mean=case * 0.8, sigma=1.2, size=int(rng.integers(1, 500)))
        counts = [int((observations <= b).sum()) for b in bounds]
        cases.append((case, counts))
    tests = []
    for case, counts in cases:
        buckets = list(zip(bounds, counts, strict=True))
        series = [
            {"series": f'h_bucket{{case="{case}",le="{"+Inf" if b == INF else b}"}}',
             "values": str(c)}
            for b, c in buckets
        ]  # fmt: skip
        exprs = [
            {
                "expr": f'histogram_quantile({q}, h_bucket{{case="{case}"}})',
                "eval_time": "0m",
                "exp_samples": [
                    {"labels": f'{{case="{case}"}}', "value": histogram_quantile(q, buckets)}
                ],
            }
            for q in (0.01, 0.25, 0.5, 0.9, 0.99, 1.0)
        ]
        tests.append({"interval": "1m", "input_series": series, "promql_expr_test": exprs})
    (tmp_path / "q_test.yml").write_text(yaml.safe_dump({"tests": tests}))
    result = subprocess.run(
        [_promtool(), "test", "rules", "q_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_quantile_edge_cases() -> None:
    assert histogram_quantile(0.5, [(10, 0), (20, 4), (INF, 4)]) == 15.0
    assert histogram_quantile(0.99, [(10, 1), (INF, 2)]) == 10.0  # rank in +Inf
    assert math.isnan(histogram_quantile(0.5, [(10, 3)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(10, 0), (INF, 0)]))  # no observations
    assert math.isnan(histogram_quantile(0.0, [(10, 0), (20, 2), (INF, 2)]))  # Go's 0/0
    assert histogram_quantile(-1, [(10, 1), (INF, 1)]) == -INF
    assert histogram_quantile(2, [(10, 1), (INF, 1)]) == INF
    # non-monotonic counts (a scrape racing an observation) are repaired, not trusted
    assert histogram_quantile(0.5, [(10, 4), (20, 3), (INF, 4)]) == 5.0


def _metrics_text() -> str:
    m = Metrics()
    m.record_events("ns.ticks", "in", 1000)
    m.record_events("ns.ticks", "in", 5)
    m.record_events("ns.features", "out", 990)
    m.record_dead_letter("ns.ticks", "BAD_PRICE", 3)
    m.record_dead_letter("ns.ticks", "UNDECODABLE", 2)
    for _ in range(10):
        m.stage_latency_ms.labels(stage="features").observe(3.0)  # all in (2, 5]
    m.stage_latency_ms.labels(stage="sink").observe(0.1)
    m.record_predictions("xgb", "1", "champion", [0.6, 0.7])
    return generate_latest(m.registry).decode()


def test_summary_counts_quantiles_and_lag() -> None:
    text = _metrics_text()
    rows = [LagRow("g", "ns.ticks", 0, 90, 100, 10), LagRow("g", "ns.ticks", 1, None, 7, 7)]
    started = next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("process_start_time_seconds ")
    )
    data = summary(Settings(), text, lag=rows, now=started + 100.0)
    assert data["events"] == {"ns.features": {"in": 0.0, "out": 990.0},
                              "ns.ticks": {"in": 1005.0, "out": 0.0}}  # fmt: skip
    assert (data["events_in"], data["events_out"]) == (1005.0, 990.0)
    assert data["dead_letters"] == {"ns.ticks": {"BAD_PRICE": 3.0, "UNDECODABLE": 2.0}}
    assert data["dead_letters_total"] == 5.0
    features = data["stages"]["features"]
    # rank 5 of 10 in bucket (2, 5] holding all 10: 2 + 3 × 5/10; rank 9.9: 2 + 3 × 0.99
    assert features["p50_ms"] == pytest.approx(3.5)
    assert features["p99_ms"] == pytest.approx(4.97)
    assert features["mean_ms"] == pytest.approx(3.0)
    assert features["batches"] == 10
    busy_s = (10 * 3.0 + 0.1) / 1000
    assert data["events_per_busy_s"] == pytest.approx(1005 / busy_s)
    assert data["uptime_s"] == pytest.approx(100.0)
    assert data["events_per_s"] == pytest.approx(10.05)
    assert data["predictions"] == 2.0
    assert data["lag_total"] == {"g": 17}
    assert [r["lag"] for r in data["lag"]] == [10, 7]
    assert data["lag_error"] is None


def test_summary_of_an_empty_page_and_a_broker_that_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(*_: object, **__: object) -> list[LagRow]:
        raise DependencyError("kafka", "cannot read offsets", "is the broker up?")

    monkeypatch.setattr(mod, "collect_lag", down)
    data = summary(Settings(), "")
    assert data["events_in"] == 0
    assert data["stages"] == {}
    assert data["events_per_busy_s"] is None
    assert data["lag"] == []
    assert "kafka: cannot read offsets" in data["lag_error"]
    console = Console(record=True, width=140, color_system=None)
    console.print(render_summary(data))
    assert "unavailable: kafka" in console.export_text()


def test_print_summary_scrapes_a_real_metrics_page() -> None:
    m = Metrics()
    m.record_events("ns.ticks", "in", 42)
    m.record_dead_letter("ns.ticks", "OUT_OF_ORDER")
    with m.stage_timer("features"):
        pass
    server = serve_metrics(0, m.registry, "127.0.0.1")
    try:
        console = Console(record=True, width=160, color_system=None)
        data = print_summary(
            Settings(), f"http://127.0.0.1:{server.port}/metrics", console=console, lag=[]
        )
    finally:
        server.close()
    text = console.export_text()
    assert data["events_in"] == 42
    assert "OUT_OF_ORDER" in text
    assert "ns.ticks" in text
    assert "features" in text
    assert "42 records in" in text


def test_print_summary_names_a_dead_metrics_page() -> None:
    from devtools.prometheus_runner import free_port

    with pytest.raises(DependencyError, match=r"cannot read http://127\.0\.0\.1"):
        print_summary(Settings(), f"http://127.0.0.1:{free_port()}/metrics", lag=[])
