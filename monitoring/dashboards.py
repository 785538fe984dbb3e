"""Grafana dashboards of tickcast, generated from code so they stay consistent.

Three dashboards — technical operations, model performance, business — are built from small
panel descriptions and written as JSON files into ``monitoring/dashboards/``::

    python -m monitoring.dashboards            # (re)write the JSON files
    python -m monitoring.dashboards --check    # exit 1 if the files are out of date

Every PromQL expression may only name series from :func:`tickcast.metrics.known_series`;
:func:`promql_metric_names` extracts them (the unit tests enforce it, so renaming a metric
breaks the build rather than a dashboard).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickcast.metrics import STAGES

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SCHEMA_VERSION = 39

# --- PromQL name extraction ------------------------------------------------------------------
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset", "inf", "nan", "atan2"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:]|\s*\()")
_DURATION = re.compile(r"^\d")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, labels left out).

    >>> sorted(promql_metric_names(
    ...     'histogram_quantile(0.95, sum by (stage, le) (rate(x_ms_bucket{stage="a"}[5m])))'
    ...     ' / on (stage) group_left up'))
    ['up', 'x_ms_bucket']
    """
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = {m.group(1) for m in _IDENT.finditer(text)}
    return {n for n in names if n.lower() not in _KEYWORDS and not _DURATION.match(n)}


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard (panel targets and query variables)."""
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            text = query["query"] if isinstance(query, dict) else query
            grafana_fn = _LABEL_VALUES.match(text)  # label_values(<expr>, <label>) is Grafana's
            exprs.append(grafana_fn.group(1) if grafana_fn else text)
    return exprs


# --- the queries as Grafana sends them -------------------------------------------------------
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


@dataclass(frozen=True)
class PanelQuery:
    """One query a dashboard sends: where it comes from, its PromQL, instant or range, and
    for a ``label_values(expr, label)`` variable the label whose values it lists."""

    where: str
    expr: str
    instant: bool
    label: str = ""


def grafana_values(dashboard: dict[str, Any], rate_interval: str = "1m") -> dict[str, str]:
    """Values for the dashboard's variables as Grafana substitutes them on its default view:
    the built-in intervals, and ``.*`` for a query variable set to *All*."""
    values = {"__rate_interval": rate_interval, "__interval": "15s", "__interval_ms": "15000",
              "__range": "6h", "__range_s": "21600", "__range_ms": "21600000"}  # fmt: skip
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            current = var.get("current", {}).get("value", [])
            chosen = current if isinstance(current, list) else [current]
            all_ = "$__all" in chosen or not chosen
            values[var["name"]] = ".*" if all_ else "|".join(str(v) for v in chosen)
    return values


def render_expr(expr: str, values: dict[str, str]) -> str:
    """``expr`` with ``$name``, ``${name}`` and ``[[name]]`` replaced; unknown names stay (so
    Prometheus refuses the ``$``).

    >>> render_expr('rate(x{m=~"$model"}[$__rate_interval])', {"model": ".*",
    ...             "__rate_interval": "1m"})
    'rate(x{m=~".*"}[1m])'
    """

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(value, expr)


def panel_queries(dashboard: dict[str, Any], rate_interval: str = "1m") -> list[PanelQuery]:
    """Every query of a dashboard, rendered: panel targets (instant or range, as the panel
    asks) and the query variables' expressions (instant)."""
    values = grafana_values(dashboard, rate_interval)
    queries = [
        PanelQuery(f"{dashboard['title']} / {panel['title']} / {target['refId']}",
                   render_expr(target["expr"], values), bool(target.get("instant")))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]  # fmt: skip
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]
        text = query["query"] if isinstance(query, dict) else query
        grafana_fn = _LABEL_VALUES.match(text)
        expr, label = grafana_fn.groups() if grafana_fn else (text, "")
        queries.append(PanelQuery(f"{dashboard['title']} / variable ${var['name']}",
                                  render_expr(expr, values), True, label))  # fmt: skip
    return queries


# --- panel descriptions ----------------------------------------------------------------------
@dataclass(frozen=True)
class Q:
    """One query of a panel: PromQL and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class P:
    """One panel: title, queries, unit, Grafana type, width and optional thresholds."""

    title: str
    queries: tuple[Q, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[float, str], ...] = ()
    description: str = ""


@dataclass
class _Layout:
    panels: list[dict[str, Any]] = field(default_factory=list)
    x: int = 0
    y: int = 0
    row_height: int = 0

    def next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {"id": self.next_id(), "type": "row", "title": title, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []}
        )  # fmt: skip
        self.y += 1

    def add(self, p: P) -> None:
        if self.x + p.width > 24:
            self._newline()
        self.panels.append(_panel(self.next_id(), p, self.x, self.y))
        self.x += p.width
        self.row_height = max(self.row_height, p.height)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x, self.row_height = 0, 0


def _panel(panel_id: int, p: P, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in p.thresholds]
    panel: dict[str, Any] = {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": p.unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr,
             "legendFormat": q.legend or "__auto", "range": True}
            for i, q in enumerate(p.queries)
        ],
    }  # fmt: skip
    for target in panel["targets"]:
        if p.kind == "heatmap":
            target["format"] = "heatmap"
        elif p.kind in {"table", "stat", "bargauge"}:
            target.update(format="table" if p.kind == "table" else "time_series", instant=True)
            target["range"] = False
    if p.thresholds and p.kind == "timeseries":
        panel["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return panel


def _variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "refresh": 2, "multi": True, "includeAll": True, "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }  # fmt: skip


def _dashboard(
    uid: str, title: str, tags: Sequence[str], sections: Sequence[tuple[str, Sequence[P]]],
    variables: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:  # fmt: skip
    layout = _Layout()
    for row_title, panels in sections:
        layout.row(row_title)
        for p in panels:
            layout.add(p)
    datasource_var = {
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "refresh": 1,
    }  # fmt: skip
    return {
        "uid": uid, "title": title, "tags": ["tickcast", *tags], "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"}, "timepicker": {},
        "links": [], "annotations": {"list": []},
        "templating": {"list": [datasource_var, *variables]},
        "panels": layout.panels,
    }  # fmt: skip


def _quantiles(metric: str, by: str, unit: str, title: str, where: str = "") -> P:
    sel = f"{{{where}}}" if where else ""
    queries = tuple(
        Q(f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{sel}[{RATE}])))",
          f"{{{{{by}}}}} p{int(q * 100)}")
        for q in (0.5, 0.95, 0.99)
    )  # fmt: skip
    return P(title, queries, unit)


# --- the three dashboards --------------------------------------------------------------------
def operations_dashboard() -> dict[str, Any]:
    """Technical operations: throughput, latency per stage, errors, DLQ, lag, process."""
    stage_panels = [
        _quantiles("tickcast_stage_latency_ms", "stage", "ms", f"Stage latency: {s}",
                   f'stage="{s}"') for s in STAGES
    ]  # fmt: skip
    sections: list[tuple[str, Sequence[P]]] = [
        ("Throughput", [
            P("Events per second by topic", (Q(
                f"sum by (topic, direction) (rate(tickcast_events_total[{RATE}]))",
                "{{topic}} {{direction}}"),), "ops"),
            P("Predictions per second by model", (Q(
                f"sum by (model, role) (rate(tickcast_predictions_total[{RATE}]))",
                "{{model}} ({{role}})"),), "ops"),
        ]),
        ("Latency (p50 / p95 / p99)", [
            *stage_panels,
            _quantiles("tickcast_http_request_ms", "route", "ms", "HTTP latency by route"),
            _quantiles("prediction_duration_seconds", "model", "s", "Scoring time per batch"),
            _quantiles("tickcast_worker_turn_ms", "phase", "ms", "Worker loop turn by phase"),
            P("Worker time per second by phase (ms/s = ‰ of a core)", (Q(
                f"sum by (phase) (rate(tickcast_worker_turn_ms_sum[{RATE}]))",
                "{{phase}}"),), "ms"),
            _quantiles("tickcast_redis_op_ms", "op", "ms", "Redis op latency"),
            _quantiles("tickcast_clickhouse_op_ms", "table", "ms", "ClickHouse op latency"),
        ]),
        ("Errors and dead letters", [
            P("Dead letters per second by reason", (Q(
                f"sum by (topic, reason) (rate(tickcast_dead_letters_total[{RATE}]))",
                "{{topic}}: {{reason}}"),), "ops"),
            P("Errors per second", (
                Q(f"sum by (op) (rate(tickcast_redis_errors_total[{RATE}]))", "redis {{op}}"),
                Q(f"sum by (op, table) (rate(tickcast_clickhouse_errors_total[{RATE}]))",
                  "clickhouse {{op}} {{table}}"),
                Q(f'sum by (route) (rate(tickcast_http_request_ms_count{{status=~"5.."}}[{RATE}]))',
                  "http 5xx {{route}}"),
                Q(f"rate(tickcast_lag_collect_errors_total[{RATE}])", "lag exporter"),
            ), "ops"),
            P("Dependencies up", (Q("min by (component) (tickcast_dependency_up)",
                                    "{{component}}"),), "bool_yes_no", "stat", thresholds=()),
            P("Scrape targets up", (Q("up", "{{job}} {{instance}}"),), "bool_yes_no", "stat"),
            P("Feature cache hit rate", (Q("feature_cache_hit_rate", "{{instance}}"),),
              "percentunit"),
            P("Oldest prediction age", (Q("max(tickcast_prediction_age_seconds)", "age"),), "s",
              thresholds=((300, "red"),)),
        ]),
        ("Kafka consumer lag", [
            P("Lag by group and topic", (Q(
                "sum by (group, topic) (kafka_consumergroup_lag)", "{{group}} / {{topic}}"),),
              "short", thresholds=((1000, "orange"),)),
            P("Lag by partition", (Q(
                "kafka_consumergroup_lag", "{{group}} {{topic}}[{{partition}}]"),), "short"),
            P("Produce rate (end-offset growth)", (Q(
                f"sum by (topic) (rate(kafka_topic_partition_end_offset[{RATE}]))",
                "{{topic}}"),), "ops"),
            P("Consume rate (commit growth)", (Q(
                f"sum by (group, topic) (rate(kafka_consumergroup_committed_offset[{RATE}]))",
                "{{group}} / {{topic}}"),), "ops"),
        ]),
        ("Process", [
            P("CPU (cores)", (Q(f"rate(process_cpu_seconds_total[{RATE}])", "{{job}}"),),
              "short"),
            P("Resident memory", (Q("process_resident_memory_bytes", "{{job}}"),), "bytes"),
        ]),
    ]  # fmt: skip
    return _dashboard("tickcast-ops", "tickcast — operations", ["operations"], sections)


def model_dashboard() -> dict[str, Any]:
    """Model performance: accuracy, log loss, drift, A/B state, champion feature importance."""
    sections: list[tuple[str, Sequence[P]]] = [
        ("Quality", [
            P("Accuracy by model version", (Q("model_accuracy", "{{model_version}}"),),
              "percentunit"),
            P("Log loss by model version", (Q(
                'tickcast_model_log_loss{model=~"$model"}', "{{model}} {{version}}"),), "short"),
            P("Prediction confidence", (Q(
                f'sum by (le) (rate(prediction_confidence_bucket{{model=~"$model"}}[{RATE}]))',
                "{{le}}"),), "short", "heatmap"),
            P("Predictions per second by role", (Q(
                "sum by (model, version, role) "
                f'(rate(tickcast_predictions_total{{model=~"$model"}}[{RATE}]))',
                "{{model}} {{version}} ({{role}})"),), "ops"),
        ]),
        ("Drift", [
            P("PSI per feature", (Q("data_drift_psi", "{{feature}}"),), "short",
              thresholds=((0.1, "orange"), (0.25, "red")),
              description="0.1 warns, 0.25 alerts (monitoring/alerts.yml)."),
            P("Most drifted features", (Q("topk(15, data_drift_psi)", "{{feature}}"),), "short",
              "bargauge", thresholds=((0.1, "orange"), (0.25, "red"))),
        ]),
        ("Champion / challenger", [
            P("Serving models (A/B state)", (Q(
                'tickcast_model_info{model=~"$model"}', "{{model}} {{version}}: {{role}}"),),
              "short", "table"),
            P("HTTP traffic by A/B arm", (Q(
                f"sum by (experiment, arm) (rate(tickcast_ab_requests_total[{RATE}]))",
                "{{experiment}}: {{arm}}"),), "reqps"),
            P("Promotion decisions (24h)", (Q(
                "sum by (model, decision) (increase(tickcast_promotion_decisions_total[1d]))",
                "{{model}}: {{decision}}"),), "short", "stat"),
            P("Champion feature importance", (Q(
                'sort_desc(tickcast_feature_importance and on (model) '
                'tickcast_model_info{role="champion"})', "{{feature}}"),),
              "percentunit", "bargauge"),
        ]),
    ]  # fmt: skip
    model_var = _variable("model", "label_values(tickcast_predictions_total, model)", "Model")
    return _dashboard("tickcast-model", "tickcast — models", ["models"], sections, [model_var])


def business_dashboard() -> dict[str, Any]:
    """Business: P&L, Sharpe ratio, drawdown per model."""
    sel = '{model=~"$model"}'
    sections: list[tuple[str, Sequence[P]]] = [
        ("Now", [
            P("Daily P&L", (Q(f"daily_pnl_usd{sel}", "{{model}}"),), "currencyUSD", "stat",
              width=8),
            P("Sharpe ratio", (Q(f"portfolio_sharpe_ratio{sel}", "{{model}}"),), "short", "stat",
              width=8),
            P("Max drawdown", (Q(f"portfolio_max_drawdown{sel}", "{{model}}"),), "percentunit",
              "stat", width=8, thresholds=((0.1, "orange"), (0.2, "red"))),
        ]),
        ("Trends", [
            P("Daily P&L by model", (Q(f"daily_pnl_usd{sel}", "{{model}}"),), "currencyUSD",
              width=24),
            P("Sharpe ratio by model", (Q(f"portfolio_sharpe_ratio{sel}", "{{model}}"),)),
            P("Max drawdown by model", (Q(f"portfolio_max_drawdown{sel}", "{{model}}"),),
              "percentunit"),
        ]),
    ]  # fmt: skip
    model_var = _variable("model", "label_values(daily_pnl_usd, model)", "Model")
    return _dashboard("tickcast-business", "tickcast — business", ["business"], sections,
                      [model_var])  # fmt: skip


#: File name → builder of each dashboard.
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "tickcast-operations.json": operations_dashboard,
    "tickcast-models.json": model_dashboard,
    "tickcast-business.json": business_dashboard,
}


def render(dashboard: dict[str, Any]) -> str:
    """The canonical JSON text of a dashboard (stable key order, trailing newline)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path = DASHBOARD_DIR) -> list[Path]:
    """Write every dashboard as JSON into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in DASHBOARDS.items():
        path = out_dir / name
        path.write_text(render(build()), encoding="utf-8")
        paths.append(path)
    return paths


def stale_dashboards(out_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Names of dashboard files missing from ``out_dir`` or differing from the generator."""
    stale = []
    for name, build in DASHBOARDS.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != render(build()):
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monitoring.dashboards [--out DIR] [--check]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="output folder")
    parser.add_argument("--check", action="store_true", help="fail if files are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_dashboards(args.out)
        for name in stale:
            print(f"out of date: {args.out / name} (run python -m monitoring.dashboards)")
        return 1 if stale else 0
    for path in write_dashboards(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
