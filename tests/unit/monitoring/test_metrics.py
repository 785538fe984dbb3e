"""The metric catalogue, the Metrics hooks and the /metrics server."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tickcast import metrics as mod
from tickcast.metrics import (
    LATENCY_BUCKETS_MS,
    SPECS,
    Metrics,
    get_metrics,
    known_series,
    serve_metrics,
    spec,
)

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _fake_clock(monkeypatch: pytest.MonkeyPatch, *ticks_ns: int) -> None:
    values: Iterator[int] = iter(ticks_ns)
    monkeypatch.setattr(mod.time, "perf_counter_ns", lambda: next(values))


def test_catalogue_names_are_unique_valid_and_carry_units() -> None:
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    for entry in SPECS:
        assert NAME.match(entry.name), entry.name
        if entry.kind == "counter":
            assert entry.name.endswith("_total"), entry.name
        if entry.kind == "histogram" and entry.name != "prediction_confidence":
            assert entry.name.endswith(("_ms", "_seconds")), entry.name
        if entry.name.endswith("_ms"):
            assert entry.buckets == LATENCY_BUCKETS_MS


def test_required_metrics_and_labels_exist() -> None:
    expected = {
        "tickcast_stage_latency_ms": ("stage",),
        "tickcast_events_total": ("topic", "direction"),
        "tickcast_dead_letters_total": ("topic", "reason"),
        "tickcast_redis_op_ms": ("op",),
        "tickcast_redis_errors_total": ("op",),
        "tickcast_clickhouse_op_ms": ("op", "table"),
        "tickcast_clickhouse_errors_total": ("op", "table"),
        "tickcast_http_request_ms": ("route", "method", "status"),
        "feature_cache_hit_rate": (),
        "tickcast_predictions_total": ("model", "version", "role"),
        "model_accuracy": ("model_version",),
        "tickcast_model_log_loss": ("model", "version"),
        "data_drift_psi": ("feature",),
        "portfolio_sharpe_ratio": ("model",),
        "portfolio_max_drawdown": ("model",),
        "daily_pnl_usd": ("model",),
        "kafka_consumergroup_lag": ("group", "topic", "partition"),
        "kafka_consumergroup_committed_offset": ("group", "topic", "partition"),
        "kafka_topic_partition_end_offset": ("topic", "partition"),
        "tickcast_dependency_up": ("component",),
        "tickcast_feature_importance": ("model", "feature"),
    }
    for name, labels in expected.items():
        assert spec(name).labels == labels, name
    assert spec("prediction_confidence").kind == "histogram"
    assert spec("prediction_duration_seconds").kind == "histogram"
    assert spec("tickcast_prediction_age_seconds").kind == "gauge"


def test_every_spec_is_exposed_with_its_series() -> None:
    m = Metrics(process=True)
    # Labelled metrics only expose samples once a child exists: touch each one.
    for entry in SPECS:
        metric = m.registry._names_to_collectors[entry.name]
        child = metric.labels(*(["x"] * len(entry.labels))) if entry.labels else metric
        if entry.kind == "counter":
            child.inc()
        elif entry.kind == "gauge":
            child.set(1)
        else:
            child.observe(1)
    exposed = {
        sample.name
        for family in text_string_to_metric_families(generate_latest(m.registry).decode())
        for sample in family.samples
    }
    own = {s for entry in SPECS for s in entry.series()}
    assert own <= exposed
    assert "process_cpu_seconds_total" in exposed
    assert "process_resident_memory_bytes" in exposed
    assert own <= known_series()


def test_latency_histograms_are_bucketed_in_milliseconds() -> None:
    m = Metrics(process=False)
    m.stage_latency_ms.labels(stage="features").observe(3)
    assert m.value("tickcast_stage_latency_ms_bucket", stage="features", le="2.0") == 0
    assert m.value("tickcast_stage_latency_ms_bucket", stage="features", le="5.0") == 1
    assert m.value("tickcast_stage_latency_ms_bucket", stage="features", le="2500.0") == 1


def test_fresh_registries_do_not_share_state() -> None:
    a, b = Metrics(process=False), Metrics(process=False)
    a.record_events("ticks", "in", 5)
    assert a.value("tickcast_events_total", topic="ticks", direction="in") == 5
    assert b.value("tickcast_events_total", topic="ticks", direction="in") is None


def test_default_instance_is_lazy_and_shared() -> None:
    code = "import tickcast.metrics as m; assert m._default is None; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
    assert get_metrics() is get_metrics()


def test_stage_timer_observes_elapsed_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Metrics(process=False)
    _fake_clock(monkeypatch, 1_000_000, 13_500_000)  # 12.5 ms apart
    with m.stage_timer("prediction"):
        pass
    assert m.value("tickcast_stage_latency_ms_sum", stage="prediction") == pytest.approx(12.5)
    assert m.value("tickcast_stage_latency_ms_count", stage="prediction") == 1


def test_redis_op_counts_errors_and_reraises(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Metrics(process=False)
    _fake_clock(monkeypatch, 0, 2_000_000, 10_000_000, 10_500_000)
    with m.redis_op("mset"):
        pass
    with pytest.raises(ConnectionError), m.redis_op("mset"):
        raise ConnectionError("down")
    assert m.value("tickcast_redis_op_ms_count", op="mset") == 2
    assert m.value("tickcast_redis_op_ms_sum", op="mset") == pytest.approx(2.5)
    assert m.value("tickcast_redis_errors_total", op="mset") == 1


def test_clickhouse_op_counts_errors_per_table() -> None:
    m = Metrics(process=False)
    with pytest.raises(ValueError, match="bad"), m.clickhouse_op("insert", "predictions"):
        raise ValueError("bad")
    with m.clickhouse_op("insert", "drift"):
        pass
    assert m.value("tickcast_clickhouse_errors_total", op="insert", table="predictions") == 1
    assert m.value("tickcast_clickhouse_errors_total", op="insert", table="drift") is None
    assert m.value("tickcast_clickhouse_op_ms_count", op="insert", table="drift") == 1


def test_scoring_timer_is_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Metrics(process=False)
    _fake_clock(monkeypatch, 0, 250_000_000)
    with m.scoring_timer("xgb"):
        pass
    assert m.value("prediction_duration_seconds_sum", model="xgb") == pytest.approx(0.25)
    assert m.value("prediction_duration_seconds_bucket", model="xgb", le="0.25") == 1
    assert m.value("prediction_duration_seconds_bucket", model="xgb", le="0.1") == 0


def test_record_predictions_counts_and_observes_confidence() -> None:
    m = Metrics(process=False)
    m.record_predictions("xgb", "3", "champion", [0.55, 0.9, 0.97])
    m.record_predictions("xgb", "3", "champion", n=2)
    assert m.value("tickcast_predictions_total", model="xgb", version="3", role="champion") == 5
    assert m.value("prediction_confidence_count", model="xgb") == 3
    assert m.value("prediction_confidence_sum", model="xgb") == pytest.approx(2.42)
    assert m.value("prediction_confidence_bucket", model="xgb", le="0.6") == 1
    stamp = m.value("tickcast_last_prediction_timestamp_seconds", model="xgb")
    assert stamp is not None
    assert stamp > 1.6e9


def test_small_recorders() -> None:
    m = Metrics(process=False)
    m.record_dead_letter("ticks", "schema", 3)
    m.observe_http("/predictions/{symbol}", "GET", 200, 4.0)
    m.set_dependency("redis", False)
    m.set_dependency("kafka", True)
    m.set_drift({"rsi_14": 0.3, "atr_14": 0.01})
    m.set_portfolio("xgb", sharpe=1.2, max_drawdown=0.08, pnl=-150.0)
    assert m.value("tickcast_dead_letters_total", topic="ticks", reason="schema") == 3
    assert (
        m.value(
            "tickcast_http_request_ms_count",
            route="/predictions/{symbol}",
            method="GET",
            status="200",
        )
        == 1
    )
    assert m.value("tickcast_dependency_up", component="redis") == 0
    assert m.value("tickcast_dependency_up", component="kafka") == 1
    assert m.value("data_drift_psi", feature="rsi_14") == pytest.approx(0.3)
    assert m.value("daily_pnl_usd", model="xgb") == -150.0
    assert m.value("portfolio_max_drawdown", model="xgb") == pytest.approx(0.08)


def test_feature_importance_is_replaced_per_champion() -> None:
    m = Metrics(process=False)
    m.set_feature_importance("xgb-v1", {"rsi_14": 0.6, "atr_14": 0.4})
    m.set_feature_importance("xgb-v2", {"macd_12_26": 1.0})
    assert m.value("tickcast_feature_importance", model="xgb-v1", feature="rsi_14") is None
    assert m.value("tickcast_feature_importance", model="xgb-v2", feature="macd_12_26") == 1.0


def test_serve_metrics_exposes_the_registry() -> None:
    m = Metrics(process=False)
    m.kafka_lag.labels("g", "t", "0").set(42)
    server = serve_metrics(0, m.registry, addr="127.0.0.1")
    try:
        body = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.close()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }
    key = ("kafka_consumergroup_lag", (("group", "g"), ("partition", "0"), ("topic", "t")))
    assert samples[key] == 42
