"""Tracing with OpenTelemetry: one set-up per process, W3C context in Kafka headers, trace ids
in log lines.

Off by default. A process traces when the standard variables ask for it:
``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``; ``none`` turns tracing off) or an OTLP
endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). The OTLP
exporter (HTTP/protobuf) and the sampler (``OTEL_TRACES_SAMPLER`` / ``_ARG``, default
``parentbased_always_on``) read their own ``OTEL_*`` variables; ``OTEL_SERVICE_NAME`` overrides
the ``tickcast-<process>`` service name. Off, :func:`active` is ``None`` and callers do nothing
at all per record.

How a tick's trace travels (docs/operations.md, "Tracing"): a producer traces one tick in
``TICKCAST_TRACE_TICK_RATIO`` (a random draw, no span for the others) and writes the context
into the record's ``traceparent`` header. Each consumer that handles records in batches
(the worker, the sink) opens one span per batch, linked to the traced records' contexts, and
per traced record a child span in the record's own trace (linked back to the batch): the
context of that child is what the record's outputs carry on, in their Kafka headers, and in
the Redis value the API serves (its ``traceparent`` key).

>>> ctx = from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
>>> format_traceparent(ctx)
'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
>>> headers = [("correlation_id", b"c1"), *kafka_headers(ctx)]
>>> headers[1]
('traceparent', b'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
>>> kafka_context(headers) == ctx
True
>>> kafka_context([("correlation_id", b"c1")]) is None, from_traceparent("garbage") is None
(True, True)
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tickcast.config import Settings
from tickcast.errors import ConfigError

#: Kafka header (and Redis value key) carrying a W3C trace context.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_CONTEXT_HEADERS = frozenset({TRACEPARENT, TRACESTATE})
EXPORTERS = ("otlp", "console")

HeaderList = list[tuple[str, bytes]]
K = TypeVar("K")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class Tracing:
    """A process's tracer and its tick-sampling rate (see :func:`configure`)."""

    provider: TracerProvider
    tick_ratio: float
    tracer: Tracer = field(init=False)

    def __post_init__(self) -> None:
        self.tracer = self.provider.get_tracer("tickcast")

    def sample_tick(self) -> bool:
        """Whether a producer traces the next tick (a draw at ``tick_ratio``)."""
        return random.random() < self.tick_ratio

    def publish_headers(self, name: str, **attributes: str | int) -> HeaderList:
        """A producer span for one record, ended at once; its context as Kafka headers."""
        span = self.tracer.start_span(name, kind=SpanKind.PRODUCER, attributes=attributes)
        span.end()
        return kafka_headers(span.get_span_context())

    def follow(
        self, name: str, traceparent: object, start_ns: int, **attributes: str
    ) -> Span | None:
        """A span in the trace of a stored ``traceparent`` (its child), started at
        ``start_ns`` and linked to the current span: how an answer joins the trace of the
        record it serves. ``None`` when ``traceparent`` is not one; the caller ends it."""
        parent = from_traceparent(traceparent)
        if parent is None:
            return None
        current = trace.get_current_span().get_span_context()
        return self.tracer.start_span(
            name,
            context=as_parent(parent),
            links=[Link(current)] if current.is_valid else None,
            start_time=start_ns,
            attributes=attributes,
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop (also runs at interpreter exit)."""
        self.provider.shutdown()


_active: list[Tracing] = []  # at most one: the process's (a list, so no `global` statement)


def active() -> Tracing | None:
    """The process's tracing, or ``None`` when tracing is off (the default)."""
    return _active[0] if _active else None


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r}: tickcast exports to {EXPORTERS}")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: its own OTEL_EXPORTER_OTLP_*


def configure(
    process: str,
    settings: Settings,
    exporter: SpanExporter | None = None,
    env: Mapping[str, str] = os.environ,
) -> Tracing | None:
    """Set up tracing for ``process`` (``worker``, ``sink``, ``api``, ``replay``) once.

    ``exporter`` (tests: the SDK's ``InMemorySpanExporter``) turns tracing on with spans
    exported synchronously; without it, the ``OTEL_*`` variables decide (:func:`wanted`) and
    spans leave in batches from a background thread. Returns ``None`` when tracing is off.
    """
    shutdown()
    if exporter is None and not wanted(env):
        return None
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"tickcast-{process}"}
    provider = TracerProvider(resource=Resource.create(attributes))  # sampler: OTEL_TRACES_*
    processor: SpanProcessor = (
        SimpleSpanProcessor(exporter) if exporter else BatchSpanProcessor(_exporter(env))
    )
    provider.add_span_processor(processor)
    _active.append(Tracing(provider, settings.trace_tick_ratio))
    return _active[0]


def shutdown() -> None:
    """Flush and forget the process's tracing (tests; a new :func:`configure`)."""
    while _active:
        _active.pop().shutdown()


# --- W3C context in Kafka headers and Redis values ----------------------------------------
def format_traceparent(context: SpanContext) -> str:
    """The W3C ``traceparent`` value of a span context."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def from_traceparent(value: object) -> SpanContext | None:
    """The remote span context of a ``traceparent`` value (``None`` when it is not one)."""
    if not value or not isinstance(value, str):
        return None
    span = trace.get_current_span(_PROPAGATOR.extract({TRACEPARENT: value}))
    context = span.get_span_context()
    return context if context.is_valid else None


def kafka_headers(context: SpanContext) -> HeaderList:
    """Kafka headers carrying ``context`` (``traceparent``, and ``tracestate`` when set)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=as_parent(context))
    return [(key, value.encode("ascii")) for key, value in carrier.items()]


def kafka_context(
    headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None,
) -> SpanContext | None:
    """The trace context in a record's headers (a confluent-kafka or aiokafka list, a Faust
    mapping), or ``None`` when it carries none or a malformed one."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for key, value in pairs:
        if key in _CONTEXT_HEADERS and value:
            carrier[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    if TRACEPARENT not in carrier:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return context if context.is_valid else None


def as_parent(context: SpanContext) -> Context:
    """An OpenTelemetry context whose current span is the remote ``context`` (a parent)."""
    return trace.set_span_in_context(NonRecordingSpan(context))


# --- batches -------------------------------------------------------------------------------
@contextmanager
def batch_spans(
    tracer: Tracer,
    name: str,
    traced: Mapping[K, SpanContext],
    size: int,
    key_attribute: str = "tickcast.correlation_id",
) -> Iterator[dict[K, SpanContext]]:
    """One current span ``name`` for a batch of ``size`` records, linked to the ``traced``
    records' contexts; per traced record a child span ``name + " record"`` in the record's
    own trace (its key as ``key_attribute``), linked back to the batch span. Yields the
    children's contexts by key: what each record's outputs carry on. The spans end when the
    block does."""
    links = [Link(context) for context in traced.values()]
    attributes = {"messaging.batch.message_count": size, "tickcast.traced_records": len(traced)}
    with tracer.start_as_current_span(
        name, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ) as batch:
        back = [Link(batch.get_span_context())]
        children = {
            key: tracer.start_span(
                f"{name} record",
                context=as_parent(context),
                links=back,
                kind=SpanKind.CONSUMER,
                attributes={key_attribute: str(key)},
            )
            for key, context in traced.items()
        }
        try:
            yield {key: span.get_span_context() for key, span in children.items()}
        finally:
            for span in children.values():
                span.end()


# --- log lines -------------------------------------------------------------------------------
def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, when one is
    being recorded (hex, as trace back-ends show them)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", f"{context.trace_id:032x}")
        event.setdefault("span_id", f"{context.span_id:016x}")
    return event


__all__ = [
    "TRACEPARENT",
    "Tracing",
    "active",
    "add_trace_ids",
    "as_parent",
    "batch_spans",
    "configure",
    "format_traceparent",
    "from_traceparent",
    "kafka_context",
    "kafka_headers",
    "shutdown",
    "wanted",
]
