"""A one-screen summary of a process's metrics: throughput, dead letters, stage latency, lag.

:func:`summary` turns the Prometheus text exposition of a process (its ``/metrics`` page) into
a plain dict; :func:`render_summary` draws that dict with rich; :func:`print_summary` does both
for a URL (what ``make demo`` shows at its end). Quantiles come from the histogram buckets with
the interpolation Prometheus's ``histogram_quantile`` uses (:func:`histogram_quantile`), so the
numbers here and in a dashboard agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from monitoring.lag import LagRow, collect_lag
from tickcast.config import Settings
from tickcast.errors import DependencyError

Bucket = tuple[float, float]  # (upper bound, cumulative count)


def histogram_quantile(q: float, buckets: Iterable[Bucket]) -> float:
    """The ``q``-quantile of a histogram given as ``(upper bound, cumulative count)`` pairs.

    Same rules as Prometheus's ``histogram_quantile``: linear interpolation inside the bucket
    holding rank ``q × count`` (from 0 for the first bucket), the second-highest bound when the
    rank falls in the ``+Inf`` bucket, NaN without observations or without a ``+Inf`` bucket.

    >>> histogram_quantile(0.5, [(10, 0), (20, 4), (float("inf"), 4)])
    15.0
    >>> histogram_quantile(0.99, [(10, 1), (float("inf"), 2)])
    10.0
    >>> math.isnan(histogram_quantile(0.5, [(10, 0), (float("inf"), 0)]))
    True
    """
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted((float(bound), float(count)) for bound, count in buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    # counts must be cumulative; a scrape racing an observation may break that: repair it
    counts: list[float] = []
    for _, count in ordered:
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = next(i for i, count in enumerate(counts) if count >= rank)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    if b == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start, end, count = 0.0, ordered[b][0], counts[b]
    if b > 0:
        start = ordered[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:  # only for q = 0 with an empty first bucket: Prometheus's 0/0
        return math.nan
    return start + (end - start) * (rank / count)


def _samples(metrics_text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
    ]


def _stages(samples: Sequence[tuple[str, dict[str, str], float]]) -> dict[str, dict[str, float]]:
    buckets: dict[str, list[Bucket]] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for name, labels, value in samples:
        stage = labels.get("stage")
        if stage is None:
            continue
        if name == "tickcast_stage_latency_ms_bucket":
            buckets.setdefault(stage, []).append((float(labels["le"]), value))
        elif name == "tickcast_stage_latency_ms_sum":
            sums[stage] = value
        elif name == "tickcast_stage_latency_ms_count":
            counts[stage] = value
    out: dict[str, dict[str, float]] = {}
    for stage in sorted(buckets):
        n = counts.get(stage, 0.0)
        if n <= 0:
            continue
        out[stage] = {
            "batches": n,
            "busy_s": sums.get(stage, 0.0) / 1000.0,
            "mean_ms": sums.get(stage, 0.0) / n,
            "p50_ms": histogram_quantile(0.5, buckets[stage]),
            "p99_ms": histogram_quantile(0.99, buckets[stage]),
        }
    return out


def _lag(settings: Settings, lag: Sequence[LagRow] | None) -> tuple[list[LagRow], str | None]:
    if lag is not None:
        return list(lag), None
    try:
        return collect_lag(settings.kafka_bootstrap, [settings.consumer_group], timeout_s=5.0), None
    except DependencyError as exc:
        return [], str(exc)


def _lag_dict(row: LagRow) -> dict[str, Any]:
    return {"group": row.group, "topic": row.topic, "partition": row.partition,
            "committed": row.committed, "end": row.end, "lag": row.lag}  # fmt: skip


def summary(
    settings: Settings,
    metrics_text: str,
    *,
    lag: Sequence[LagRow] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The figures of one ``/metrics`` page plus the consumer lag of ``settings``'s group.

    ``lag`` (rows of :func:`monitoring.lag.collect_lag`) is read from the broker when not
    given; a broker that does not answer leaves ``lag`` empty and sets ``lag_error``. Keys:

    * ``events`` — ``{topic: {"in": n, "out": n}}``; ``events_in`` / ``events_out`` totals;
    * ``dead_letters`` — ``{topic: {reason: n}}``; ``dead_letters_total``;
    * ``stages`` — ``{stage: {batches, busy_s, mean_ms, p50_ms, p99_ms}}`` (micro-batches);
    * ``events_per_busy_s`` — records consumed per second spent inside the stages;
    * ``uptime_s`` / ``events_per_s`` — process age and the mean consumption rate over it;
    * ``predictions`` — total predictions made; ``lag`` — ``[{group, topic, partition,
      committed, end, lag}]``; ``lag_total`` — ``{group: n}``; ``lag_error``.
    """
    samples = _samples(metrics_text)
    events: dict[str, dict[str, float]] = {}
    dead: dict[str, dict[str, float]] = {}
    predictions = 0.0
    started: float | None = None
    for name, labels, value in samples:
        if name == "tickcast_events_total":
            per_topic = events.setdefault(labels["topic"], {"in": 0.0, "out": 0.0})
            per_topic[labels["direction"]] = per_topic.get(labels["direction"], 0.0) + value
        elif name == "tickcast_dead_letters_total":
            by_reason = dead.setdefault(labels["topic"], {})
            by_reason[labels["reason"]] = by_reason.get(labels["reason"], 0.0) + value
        elif name == "tickcast_predictions_total":
            predictions += value
        elif name == "process_start_time_seconds":
            started = value
    stages = _stages(samples)
    events_in = sum(t.get("in", 0.0) for t in events.values())
    busy = sum(s["busy_s"] for s in stages.values())
    uptime = None if started is None else max(0.0, (now or time.time()) - started)
    rows, lag_error = _lag(settings, lag)
    lag_total: dict[str, int] = {}
    for row in rows:
        lag_total[row.group] = lag_total.get(row.group, 0) + row.lag
    return {
        "events": dict(sorted(events.items())),
        "events_in": events_in,
        "events_out": sum(t.get("out", 0.0) for t in events.values()),
        "dead_letters": {t: dict(sorted(r.items())) for t, r in sorted(dead.items())},
        "dead_letters_total": sum(sum(r.values()) for r in dead.values()),
        "stages": stages,
        "events_per_busy_s": events_in / busy if busy > 0 else None,
        "uptime_s": uptime,
        "events_per_s": events_in / uptime if uptime else None,
        "predictions": predictions,
        "lag": [_lag_dict(r) for r in rows],
        "lag_total": lag_total,
        "lag_error": lag_error,
    }


def _n(value: float | None, fmt: str = ",.0f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


def render_summary(data: dict[str, Any], title: str = "tickcast metrics summary") -> Group:
    """A rich renderable of :func:`summary`'s dict: four small tables and a headline."""
    head = Text(
        f"{title}: {_n(data['events_in'])} records in, {_n(data['events_out'])} out, "
        f"{_n(data['dead_letters_total'])} dead-lettered; "
        f"{_n(data['events_per_busy_s'])} records per busy second, "
        f"{_n(data['events_per_s'], ',.1f')}/s over {_n(data['uptime_s'], ',.0f')} s uptime",
        style="bold",
    )
    events = Table(title="records per topic")
    for column in ("topic", "in", "out"):
        events.add_column(column, justify="left" if column == "topic" else "right")
    for topic, counts in data["events"].items():
        events.add_row(topic, _n(counts.get("in")), _n(counts.get("out")))
    dead = Table(title="dead letters")
    for column in ("topic", "reason", "records"):
        dead.add_column(column, justify="right" if column == "records" else "left")
    for topic, reasons in data["dead_letters"].items():
        for reason, n in reasons.items():
            dead.add_row(topic, reason, _n(n))
    if not data["dead_letters"]:
        dead.caption = "none"
    stages = Table(title="stage latency per micro-batch (ms)")
    for column in ("stage", "batches", "mean", "p50", "p99"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for stage, s in data["stages"].items():
        stages.add_row(
            stage, _n(s["batches"]), _n(s["mean_ms"], ".2f"), _n(s["p50_ms"], ".2f"),
            _n(s["p99_ms"], ".2f"),
        )  # fmt: skip
    lag = Table(title="consumer lag")
    for column in ("group", "topic", "partition", "lag"):
        lag.add_column(column, justify="left" if column in {"group", "topic"} else "right")
    for row in data["lag"]:
        lag.add_row(row["group"], row["topic"], str(row["partition"]), _n(row["lag"]))
    if data["lag_error"]:
        lag.caption = f"unavailable: {data['lag_error']}"
    else:
        totals = ", ".join(f"{g}={n}" for g, n in data["lag_total"].items())
        lag.caption = f"total: {totals}" if totals else "no committed offsets"
    return Group(head, events, dead, stages, lag)


def fetch_metrics(url: str, timeout_s: float = 5.0) -> str:
    """The text of a ``/metrics`` page; :class:`DependencyError` when it does not answer."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DependencyError(
            "metrics", f"cannot read {url}: {exc}", "is the process up with --metrics-port?"
        ) from exc
    return response.text


def print_summary(
    settings: Settings,
    worker_metrics_url: str,
    *,
    console: Console | None = None,
    lag: Sequence[LagRow] | None = None,
) -> dict[str, Any]:
    """Scrape ``worker_metrics_url``, print the summary and return its dict."""
    data = summary(settings, fetch_metrics(worker_metrics_url), lag=lag)
    (console or Console()).print(render_summary(data))
    return data
