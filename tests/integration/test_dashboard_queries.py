"""Every Grafana dashboard query, rendered as Grafana sends it, answered by a real Prometheus.

The metric-name check (tests/unit/monitoring/test_dashboards.py) cannot see a query that
Prometheus refuses: a syntax slip, a function given the wrong type, a vector match that is
many-to-many once there are series. Here a real Prometheus scrapes a real ``/metrics`` page
(``tickcast.metrics.Metrics``, every catalogue metric with two series of realistic labels,
moving while it is scraped), each panel target runs as the panel asks (``query`` for instant
panels, ``query_range`` for the others) with Grafana's variables substituted, and any error
fails the test. A target that returns no data fails too: the series are all there, so an
empty answer means a label or selector that matches nothing the code exports.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import Counter, Gauge, Histogram

from devtools.prometheus_runner import PrometheusRunner
from monitoring.dashboards import DASHBOARDS, PanelQuery, panel_queries
from tickcast.metrics import SPECS, STAGES, Metrics, serve_metrics

pytestmark = pytest.mark.integration

#: Label values as the code writes them; any other label gets ``<label>-a`` / ``<label>-b``.
LABELS: dict[str, tuple[str, ...]] = {
    "stage": STAGES,
    "direction": ("in", "out"),
    "status": ("200", "503"),
    "role": ("champion", "challenger"),
    "model": ("tickcast-direction-h1", "river-logistic"),
    "component": ("kafka", "redis"),
    "decision": ("promoted", "kept"),
}
#: Grafana's $__rate_interval for a 1 s scrape (it is at least four scrape intervals).
RATE_INTERVAL = "10s"


def _collectors(metrics: Metrics) -> dict[str, Counter | Gauge | Histogram]:
    found: dict[str, Counter | Gauge | Histogram] = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            for family in value.describe():
                found[family.name] = value
    return found


def _move(metrics: Metrics, rng: random.Random) -> None:
    """Every catalogue metric, two series or more each (every known label value), one step
    further."""
    collectors = _collectors(metrics)
    for spec in SPECS:
        collector = collectors[spec.name.removesuffix("_total")]
        choices = [LABELS.get(name, (f"{name}-a", f"{name}-b")) for name in spec.labels]
        for i in range(max([2, *map(len, choices)])):
            labels = {name: c[i % len(c)] for name, c in zip(spec.labels, choices, strict=True)}
            child: Any = collector.labels(**labels) if labels else collector
            if spec.kind == "counter":
                child.inc(rng.uniform(1, 10))
            elif spec.kind == "gauge":
                child.set(rng.uniform(0, 1))
            else:
                child.observe(rng.uniform(0, 200))


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusRunner]:
    metrics = Metrics()
    rng = random.Random(7)
    stop = threading.Event()

    def keep_moving() -> None:
        while not stop.wait(0.2):
            _move(metrics, rng)

    _move(metrics, rng)
    mover = threading.Thread(target=keep_moving, daemon=True)
    mover.start()
    server = serve_metrics(0, metrics.registry, "127.0.0.1")
    runner = PrometheusRunner({"tickcast": f"127.0.0.1:{server.port}"}, rules=None)
    try:
        with runner:
            # Enough scrapes for every rate window to hold several samples.
            runner.wait_for(
                "count_over_time(up[1m])",
                lambda r: bool(r) and r[0]["value"] >= 12,
                timeout_s=60,
            )
            yield runner
    finally:
        stop.set()
        mover.join(timeout=5)
        server.close()


def _ask(runner: PrometheusRunner, query: PanelQuery) -> dict[str, Any]:
    """Prometheus's whole answer (status, error, data, warnings) to one dashboard query."""
    now = time.time()
    if query.label:  # a label_values() variable: Grafana asks the label-values API
        params = {"match[]": query.expr}
        url = f"{runner.url}/api/v1/label/{query.label}/values"
        answer = dict(httpx.get(url, params=params, timeout=10).json())
        return {**answer, "data": {"result": answer.get("data")}}
    if query.instant:
        params = {"query": query.expr, "time": f"{now:.3f}"}
        response = httpx.get(f"{runner.url}/api/v1/query", params=params, timeout=10)
    else:
        params = {"query": query.expr, "start": f"{now - 60:.3f}", "end": f"{now:.3f}",
                  "step": "5"}  # fmt: skip
        response = httpx.get(f"{runner.url}/api/v1/query_range", params=params, timeout=10)
    return dict(response.json())


def problems(runner: PrometheusRunner, dashboard: dict[str, Any]) -> list[str]:
    """What is wrong with a dashboard's queries against ``runner``: errors, warnings, and
    targets (and variables) that return nothing."""
    found = []
    for query in panel_queries(dashboard, RATE_INTERVAL):
        answer = _ask(runner, query)
        if answer.get("status") != "success":
            found.append(f"{query.where}: {answer.get('errorType')}: {answer.get('error')}"
                         f" in {query.expr!r}")  # fmt: skip
        elif answer.get("warnings"):
            found.append(f"{query.where}: warnings {answer['warnings']} in {query.expr!r}")
        elif not answer["data"]["result"]:
            found.append(f"{query.where}: no data from {query.expr!r}")
    return found


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_of_the_dashboard_runs_on_the_real_prometheus(
    prometheus: PrometheusRunner, name: str
) -> None:
    dashboard = DASHBOARDS[name]()
    assert len(panel_queries(dashboard)) >= 5
    assert problems(prometheus, dashboard) == []


def test_the_check_fails_on_queries_prometheus_refuses(prometheus: PrometheusRunner) -> None:
    """The check itself: a syntax error, a type error and a many-to-many match are caught,
    each on its panel, and a selector or a variable that matches nothing is reported."""
    dashboard = DASHBOARDS["tickcast-operations.json"]()
    good = problems(prometheus, dashboard)
    assert good == []
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    broken = {
        0: "sum by (topic (rate(tickcast_events_total[$__rate_interval]))",  # syntax
        1: "rate(tickcast_predictions_total)",  # instant vector given to rate
        2: "tickcast_events_total * on () group_left tickcast_events_total",  # many-to-many
        3: 'tickcast_events_total{topic="no-such-topic"}',  # matches nothing
    }
    for index, expr in broken.items():
        targets[index]["expr"] = expr
    # A variable listing a label the metric does not have (Grafana's menu would be empty).
    dashboard["templating"]["list"].append(
        {
            "name": "m",
            "type": "query",
            "query": {"query": "label_values(tickcast_events_total, model)"},
        }
    )
    found = problems(prometheus, json.loads(json.dumps(dashboard)))
    assert len(found) == 5, found
    expected = [("bad_data", "parse error"), ("bad_data", "range vector"),
                ("execution", "many-to-many"), ("no data", "no-such-topic"),
                ("variable $m", "no data")]  # fmt: skip
    for problem, (kind, detail) in zip(found, expected, strict=True):
        assert kind in problem, problem
        assert detail in problem, problem
