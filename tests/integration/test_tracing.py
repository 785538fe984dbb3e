"""One trace from a produced tick to the HTTP answer that served its prediction.

On the real broker, Redis, chDB and a per-test MLflow store, with the SDK's in-memory
exporter: replay publishes ticks (every one traced here), the direct runner scores them in
this process, the ClickHouse sink writes the predictions, and the API answers the latest
prediction. The served prediction's trace must hold, parent to child: the producer span, the
worker's span for that tick (linked to its batch span, which links back to the producer
span), the sink's span for its prediction record, and the API's "prediction served" span
(linked to the HTTP server span of the request).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agents.direct_runner import DirectRunner
from agents.worker import build_stage
from serving.circuit import CircuitBreaker
from serving.main import create_app
from serving.security.users import UserStore
from streams.replay import publish
from tests.integration.test_scoring_pipeline import NAME, _model
from tests.integration.test_scoring_pipeline import scoring as scoring  # fixture
from tests.support.bars import make_bars
from tests.support.sink import sink_until_written
from tickcast import tracing
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.registry import register

pytestmark = pytest.mark.integration
PASSWORD = "a-long-test-password-0"  # test fixture only


@pytest.fixture
def traced(scoring: Settings) -> Iterator[tuple[Settings, InMemorySpanExporter]]:
    """Tracing on in this process (every tick traced), spans kept in memory."""
    settings = scoring.model_copy(
        update={"trace_tick_ratio": 1.0, "sink_batch_interval_s": 0.2, "password_scrypt_n": 2**14}
    )
    exporter = InMemorySpanExporter()
    tracing.configure("test", settings, exporter=exporter)
    yield settings, exporter
    tracing.shutdown()


async def _run_worker_until_served(settings: Settings, symbol: str, last_ts: int) -> dict[str, Any]:
    """The direct runner in this process until Redis holds the traced prediction of
    ``symbol``'s tick at ``last_ts``; returns that serving JSON."""
    stage = build_stage(settings, Metrics())
    stage.open()
    runner = DirectRunner(settings, stage)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    client = aioredis.Redis.from_url(settings.redis_url)
    key = f"{settings.redis_key_prefix}prediction:{symbol}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert not task.done(), "the worker stopped"
            assert time.monotonic() < deadline, "no traced prediction in Redis"
            raw = await client.get(key)
            doc = orjson.loads(raw) if raw else {}
            if doc.get("traceparent") and doc.get("event_time") == last_ts:
                return dict(doc)
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await stage.close()
        await client.aclose()


async def _answer(settings: Settings, symbol: str) -> httpx.Response:
    """GET the latest prediction through the API (FastAPI instrumented: tracing is on)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        users = UserStore(
            app.state.runtime.clients.redis,
            prefix=settings.redis_key_prefix,
            breaker=CircuitBreaker("t"),
            scrypt_n=settings.password_scrypt_n,
        )
        name = f"viewer-{uuid.uuid4().hex[:8]}"
        await users.create(name, PASSWORD, "viewer")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            form = {"grant_type": "password", "username": name, "password": PASSWORD}
            login = await http.post("/v1/auth/token", data=form)
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            return await http.get(f"/v1/predictions/{symbol}/latest", headers=headers)


def _one(spans: list[ReadableSpan], name: str, trace_id: int) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.context.trace_id == trace_id]
    assert len(found) == 1, (name, [s.name for s in spans if s.context.trace_id == trace_id])
    return found[0]


async def test_one_trace_from_a_produced_tick_to_the_http_answer(
    traced: tuple[Settings, InMemorySpanExporter],
) -> None:
    settings, spans = traced
    register(_model(1), name=NAME, settings=settings)
    frame = make_bars(2, 5, seed=3)
    symbol = str(frame.symbol.iloc[0])
    last_ts = int(frame[frame.symbol == symbol].ts_ms.max())

    assert publish(settings, frame, "test") == len(frame)
    served = await _run_worker_until_served(settings, symbol, last_ts)
    await asyncio.to_thread(sink_until_written, settings, len(frame))
    response = await _answer(settings, symbol)
    assert response.status_code == 200, response.text
    assert response.json()["correlation_id"] == served["correlation_id"]

    finished = list(spans.get_finished_spans())
    parent = tracing.from_traceparent(served["traceparent"])
    assert parent is not None
    trace_id = parent.trace_id
    cid = served["correlation_id"]

    produced = _one(finished, f"{settings.topic('ticks')} publish", trace_id)
    assert produced.kind is SpanKind.PRODUCER
    assert produced.parent is None  # the tick starts the trace
    assert produced.attributes is not None
    assert produced.attributes["tickcast.correlation_id"] == cid

    worker = _one(finished, "worker batch record", trace_id)
    assert worker.parent is not None
    assert worker.parent.span_id == produced.context.span_id
    assert worker.context.span_id == parent.span_id  # what the prediction carries on
    (to_batch,) = worker.links
    batch = next(s for s in finished if s.context == to_batch.context)
    assert batch.name == "worker batch"
    assert produced.context.span_id in {link.context.span_id for link in batch.links}

    sink = _one(finished, "sink batch record", trace_id)
    assert sink.parent is not None
    assert sink.parent.span_id == worker.context.span_id

    answer = _one(finished, "prediction served", trace_id)
    assert answer.parent is not None
    assert answer.parent.span_id == worker.context.span_id
    assert answer.attributes is not None
    assert answer.attributes["tickcast.correlation_id"] == cid
    (to_request,) = answer.links
    request = next(s for s in finished if s.context == to_request.context)
    assert request.kind is SpanKind.SERVER
    assert "/v1/predictions/" in request.name or request.name.startswith("GET")

    # Every span of the trace descends from the producer span.
    in_trace = {s.context.span_id: s for s in finished if s.context.trace_id == trace_id}
    for span in in_trace.values():
        node = span
        while node.parent is not None:
            node = in_trace[node.parent.span_id]
        assert node is produced, span.name
