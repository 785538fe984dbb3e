"""tickcast.tracing: set-up from the OTEL_* variables, W3C context in Kafka headers and in
Redis values, batch spans with links, and trace ids in structlog lines.

The reference for the header format is the SDK's own W3C propagator and the W3C layout
(``version-traceid-spanid-flags``), not our formatting code.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents.feature_stage import traced_ticks
from streams.raw_record import RawRecord
from tickcast import tracing
from tickcast.config import Settings
from tickcast.logging import bind_correlation_id, configure_logging

W3C = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _ids(context: trace.SpanContext) -> tuple[int, int]:
    return context.trace_id, context.span_id


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, every span kept in memory."""
    spans = InMemorySpanExporter()
    tracing.configure("test", Settings(trace_tick_ratio=1.0), exporter=spans)
    yield spans
    tracing.shutdown()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_otel_variables_decide(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


def test_off_by_default_is_none() -> None:
    assert tracing.configure("worker", Settings(), env={}) is None
    assert tracing.active() is None


def test_on_from_the_environment_with_the_service_name() -> None:
    env = {"OTEL_TRACES_EXPORTER": "console"}
    try:
        configured = tracing.configure("worker", Settings(), env=env)
        assert configured is tracing.active() is not None
        assert configured.provider.resource.attributes["service.name"] == "tickcast-worker"
    finally:
        tracing.shutdown()
    assert tracing.active() is None


def test_an_unknown_exporter_is_a_clear_error() -> None:
    from tickcast.errors import ConfigError

    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        tracing.configure("worker", Settings(), env={"OTEL_TRACES_EXPORTER": "zipkin"})


def test_kafka_headers_are_what_the_w3c_propagator_writes(exporter: InMemorySpanExporter) -> None:
    active = tracing.active()
    assert active is not None
    headers = active.publish_headers("ticks publish", symbol="AAPL")
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER
    reference: dict[str, str] = {}
    as_current = trace.set_span_in_context(trace.NonRecordingSpan(span.context))
    TraceContextTextMapPropagator().inject(reference, as_current)
    assert dict(headers) == {k: v.encode() for k, v in reference.items()}
    match = W3C.match(dict(headers)["traceparent"].decode())
    assert match is not None
    assert int(match.group(1), 16) == span.context.trace_id
    assert int(match.group(2), 16) == span.context.span_id


def test_kafka_context_reads_every_header_shape() -> None:
    value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    want = tracing.from_traceparent(value)
    assert want is not None
    assert want.is_remote
    assert (want.trace_id, want.span_id) == (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xF067AA0BA902B7)
    shapes = [
        [("correlation_id", b"c1"), ("traceparent", value.encode())],  # confluent-kafka
        [("traceparent", value)],  # str values
        {"traceparent": value.encode(), "run_id": b"r"},  # Faust mapping
    ]
    for headers in shapes:
        assert tracing.kafka_context(headers) == want
    with_state = [("traceparent", value.encode()), ("tracestate", b"vendor=1")]
    context = tracing.kafka_context(with_state)
    assert context is not None
    assert context.trace_state.get("vendor") == "1"
    assert dict(tracing.kafka_headers(context)) == dict(with_state)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("correlation_id", b"c1")],
        [("traceparent", b"garbage")],
        [("traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01")],  # zero id
        [("traceparent", b"\xff\xfe")],
        [("traceparent", None)],
    ],
)
def test_no_or_a_bad_context_is_none(headers: list[tuple[str, bytes | None]] | None) -> None:
    assert tracing.kafka_context(headers) is None


@pytest.mark.parametrize("value", [None, "", "00-xyz", 42, ["00-"], {"a": 1}])
def test_a_stored_traceparent_that_is_not_one_is_none(value: object) -> None:
    assert tracing.from_traceparent(value) is None


def test_sampling_draws_at_the_configured_ratio() -> None:
    import random

    random.seed(7)
    for ratio, low, high in [(0.0, 0, 0), (1.0, 20_000, 20_000), (0.05, 850, 1150)]:
        sampler = tracing.Tracing(tracing.TracerProvider(), ratio)
        hits = sum(sampler.sample_tick() for _ in range(20_000))
        assert low <= hits <= high, (ratio, hits)  # 0.05: mean 1000, sd 31; ±4.8 sd


def test_a_batch_span_links_its_traced_records_which_continue_their_traces(
    exporter: InMemorySpanExporter,
) -> None:
    active = tracing.active()
    assert active is not None
    ticks = {f"c{i}": tracing.kafka_context(active.publish_headers("publish")) for i in range(3)}
    traced = {k: v for k, v in ticks.items() if v is not None}
    exporter.clear()
    with tracing.batch_spans(active.tracer, "worker batch", traced, size=50) as children:
        current = trace.get_current_span().get_span_context()
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name == "worker batch"}
    batch = spans["worker batch"]
    assert batch.context == current  # the batch span is current inside the block
    assert sorted(_ids(link.context) for link in batch.links) == sorted(map(_ids, traced.values()))
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 50
    records = {s.context.span_id: s for s in exporter.get_finished_spans() if s.name != batch.name}
    assert len(records) == 3
    for key, context in traced.items():
        child = records[children[key].span_id]
        assert child.context.trace_id == context.trace_id  # the tick's own trace
        assert child.parent is not None
        assert child.parent.span_id == context.span_id
        assert [link.context for link in child.links] == [batch.context]
        assert child.attributes is not None
        assert child.attributes["tickcast.correlation_id"] == key


def test_follow_joins_the_stored_trace_and_links_the_current_span(
    exporter: InMemorySpanExporter,
) -> None:
    active = tracing.active()
    assert active is not None
    stored = tracing.kafka_context(active.publish_headers("publish"))
    assert stored is not None
    with active.tracer.start_as_current_span("GET /latest") as request:
        span = active.follow("prediction served", tracing.format_traceparent(stored), 1, a="b")
        assert span is not None
        span.end()
    assert active.follow("x", "not a traceparent", 1) is None
    served = next(s for s in exporter.get_finished_spans() if s.name == "prediction served")
    assert served.context.trace_id == stored.trace_id
    assert served.parent is not None
    assert served.parent.span_id == stored.span_id
    assert [link.context for link in served.links] == [request.get_span_context()]
    assert served.start_time == 1


def test_traced_ticks_are_keyed_by_their_correlation_id(exporter: InMemorySpanExporter) -> None:
    active = tracing.active()
    assert active is not None
    traced = [("correlation_id", b"c7"), *active.publish_headers("p")]
    anonymous = active.publish_headers("p")
    records = [
        RawRecord("ticks", 0, 1, b"A", b"", 0, None),
        RawRecord("ticks", 0, 2, b"A", b"", 0, traced),
        RawRecord("ticks", 1, 9, b"B", b"", 0, anonymous),
        RawRecord("ticks", 1, 10, b"B", b"", 0, [("traceparent", b"bad")]),
    ]
    found = traced_ticks(records)
    assert set(found) == {"c7", "1@9"}
    assert found["c7"] == tracing.kafka_context(traced)


def test_log_lines_carry_the_trace_and_the_correlation_id(exporter: InMemorySpanExporter) -> None:
    active = tracing.active()
    assert active is not None
    saved = structlog.get_config()
    configure_logging("INFO", json=True)
    processors = structlog.get_config()["processors"]  # the chain every process logs with
    structlog.configure(**saved)  # the rest of the session logs as before
    out = io.StringIO()
    log = structlog.wrap_logger(structlog.PrintLogger(out), processors=processors)
    structlog.contextvars.clear_contextvars()
    bind_correlation_id("tick-1")
    try:
        log.info("outside")
        with active.tracer.start_as_current_span("inside") as span:
            log.info("inside")
    finally:
        structlog.contextvars.clear_contextvars()
    outside, inside = (json.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside
    assert outside["correlation_id"] == "tick-1"
    context = span.get_span_context()
    assert inside["trace_id"] == trace.format_trace_id(context.trace_id)
    assert inside["span_id"] == trace.format_span_id(context.span_id)
    assert inside["correlation_id"] == "tick-1"


class _Message:
    """The confluent-kafka Message methods the sink reads."""

    def __init__(self, offset: int, headers: list[tuple[str, bytes]] | None) -> None:
        self._offset, self._headers = offset, headers

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def topic(self) -> str:
        return "predictions"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset


def test_the_sink_keys_traced_messages_like_the_worker(exporter: InMemorySpanExporter) -> None:
    from sinks.sink_process import traced_messages

    active = tracing.active()
    assert active is not None
    with_id = [("correlation_id", b"c9"), *active.publish_headers("p")]
    without_id = active.publish_headers("p")
    messages = [_Message(1, None), _Message(2, with_id), _Message(3, without_id)]
    found = traced_messages(messages)
    assert set(found) == {"c9", "predictions:2@3"}
    assert found["c9"] == tracing.kafka_context(with_id)
