"""Latest predictions, with the caller's A/B arm when A/B is on."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Query
from opentelemetry import trace
from opentelemetry.trace import Span

from online_learning.ab import Arm, assign
from serving.deps import PredictionsReader, RuntimeDep
from serving.errors import NotFound, PayloadTooLarge, ServiceUnavailable
from serving.freshness import MalformedRecord, prediction_public
from serving.runtime import Runtime
from serving.schemas.common import PROTECTED, SYMBOL_PATTERN, error_responses
from serving.schemas.predictions import (
    PredictionPublic,
    PredictionsBatchPublic,
    PredictionsBatchRequest,
)
from serving.security.service import Principal
from serving.store import Record
from tickcast.tracing import Tracing
from tickcast.tracing import active as active_tracing

router = APIRouter(prefix="/predictions", tags=["predictions"])
log = structlog.get_logger("serving.predictions")

SymbolPath = Annotated[
    str, Path(pattern=SYMBOL_PATTERN, description="Ticker: A-Z, 0-9, '.', '-'; 1 to 12.")
]
EXPERIMENT = "http-latest"
EXPLAIN_DOC = "Add the champion's top-k TreeSHAP feature contributions (`explanation`)."


@router.get(
    "/{symbol}/latest",
    response_model=PredictionPublic,
    responses=error_responses(*PROTECTED, 404),
)
async def latest_prediction(
    symbol: SymbolPath,
    principal: PredictionsReader,
    runtime: RuntimeDep,
    explain: Annotated[bool, Query(description=EXPLAIN_DOC)] = False,
) -> PredictionPublic:
    """The latest prediction for ``symbol`` with its age and staleness.

    The champion's, or with A/B on (``TICKCAST_AB_ENABLED``) the caller's arm's: a stable
    hash of the caller puts ``ab_split`` of callers on the champion; the challenger arm gets
    the challenger's latest prediction when the worker wrote one, else the champion's with a
    ``note`` saying so. With ``explain=true`` the answer carries the champion's top-k
    feature contributions (``TICKCAST_EXPLAIN_TOP_K``), null for a challenger's prediction.
    """
    return await latest_answer(runtime, principal, symbol, explain=explain)


async def latest_answer(
    runtime: Runtime, principal: Principal, symbol: str, *, explain: bool = False
) -> PredictionPublic:
    """The answer of :func:`latest_prediction` for an authorised caller (also the fast path's,
    :mod:`serving.fastpath`, which takes requests without a query string only)."""
    settings = runtime.settings
    store = runtime.store
    started_ns = time.time_ns()
    arm: Arm | None = None
    note: str | None = None
    record: Record | None = None
    if settings.ab_enabled:
        arm = assign(principal.sub, settings.ab_split)
        runtime.ab_counter.add(arm)
        runtime.metrics.ab_requests.labels(experiment=EXPERIMENT, arm=arm).inc()
        if arm == "challenger":
            record = await store.get_prediction(symbol, "challenger")
            if record is None:
                note = "no challenger prediction for this symbol; the champion's is served"
    if record is None:
        record = await store.get_prediction(symbol)
    if record is None:
        raise NotFound(f"no prediction for {symbol}")
    tracing = active_tracing()
    span = None if tracing is None else _served_span(tracing, record, symbol, started_ns)
    try:
        public = prediction_public(
            symbol,
            record,
            now_s=runtime.clients.clock(),
            stale_after_s=settings.stale_after_s,
            explain=explain,
        )
    except MalformedRecord as exc:
        log.error("malformed_store_record", symbol=symbol, reason=str(exc))
        raise ServiceUnavailable("store returned a malformed record", retry_after_s=1) from None
    finally:
        if span is not None:
            span.end()
    if arm is not None:
        public.arm = arm
        public.note = note
    return public


def _served_span(tracing: Tracing, record: Record, symbol: str, started_ns: int) -> Span | None:
    """The look-up as a span of the served prediction's trace, when the worker traced its
    tick (the record's ``traceparent``), linked to the HTTP request's span; logged there."""
    tick = str(record.get("correlation_id") or "")
    attributes = {"tickcast.symbol": symbol, "tickcast.correlation_id": tick}
    span = tracing.follow("prediction served", record.get("traceparent"), started_ns, **attributes)
    if span is not None:
        with trace.use_span(span, end_on_exit=False):
            log.info("traced_prediction_served", symbol=symbol, tick_correlation_id=tick)
    return span


@router.post(":batch", response_model=PredictionsBatchPublic, responses=error_responses(*PROTECTED))
async def batch_predictions(
    body: PredictionsBatchRequest, _: PredictionsReader, runtime: RuntimeDep
) -> PredictionsBatchPublic:
    """The champion's latest predictions of up to ``batch_max_symbols`` symbols in one call
    (the same limits as the features batch; A/B arms apply to single look-ups only)."""
    symbols = list(dict.fromkeys(body.symbols))
    cap = runtime.settings.batch_max_symbols
    if len(symbols) > cap:
        raise PayloadTooLarge(f"at most {cap} symbols per batch", code="too_many_symbols")
    records = await asyncio.gather(*(runtime.store.get_prediction(s) for s in symbols))
    now, stale = runtime.clients.clock(), runtime.settings.stale_after_s
    out: dict[str, PredictionPublic | None] = {}
    for symbol, record in zip(symbols, records, strict=True):
        try:
            out[symbol] = (
                None
                if record is None
                else prediction_public(symbol, record, now_s=now, stale_after_s=stale)
            )
        except MalformedRecord as exc:
            log.error("malformed_store_record", symbol=symbol, reason=str(exc))
            raise ServiceUnavailable("store returned a malformed record", retry_after_s=1) from None
    missing = [symbol for symbol, value in out.items() if value is None]
    return PredictionsBatchPublic(predictions=out, missing=missing)
