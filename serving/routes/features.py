"""Latest features, one symbol or a batch."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path

from serving.deps import FeaturesReader, RuntimeDep, StoreDep
from serving.errors import NotFound, PayloadTooLarge, ServiceUnavailable
from serving.freshness import MalformedRecord, features_public
from serving.schemas.common import PROTECTED, SYMBOL_PATTERN, error_responses
from serving.schemas.features import FeaturesBatchPublic, FeaturesBatchRequest, FeaturesPublic
from serving.store import Record

router = APIRouter(prefix="/features", tags=["features"])
log = structlog.get_logger("serving.features")

SymbolPath = Annotated[
    str, Path(pattern=SYMBOL_PATTERN, description="Ticker: A-Z, 0-9, '.', '-'; 1 to 12.")
]


def _public(symbol: str, record: Record, runtime: RuntimeDep) -> FeaturesPublic:
    try:
        return features_public(
            symbol,
            record,
            now_s=runtime.clients.clock(),
            stale_after_s=runtime.settings.stale_after_s,
        )
    except MalformedRecord as exc:
        log.error("malformed_store_record", symbol=symbol, reason=str(exc))
        raise ServiceUnavailable("store returned a malformed record", retry_after_s=1) from None


@router.get(
    "/{symbol}/latest",
    response_model=FeaturesPublic,
    responses=error_responses(*PROTECTED, 404),
)
async def latest_features(
    symbol: SymbolPath, _: FeaturesReader, store: StoreDep, runtime: RuntimeDep
) -> FeaturesPublic:
    """The latest feature vector of ``symbol``, with its age and staleness."""
    record = (await store.get_features([symbol])).get(symbol)
    if record is None:
        raise NotFound(f"no features for {symbol}")
    return _public(symbol, record, runtime)


@router.post(":batch", response_model=FeaturesBatchPublic, responses=error_responses(*PROTECTED))
async def batch_features(
    body: FeaturesBatchRequest, _: FeaturesReader, store: StoreDep, runtime: RuntimeDep
) -> FeaturesBatchPublic:
    """Latest features of up to ``batch_max_symbols`` symbols in one call (one store read)."""
    symbols = list(dict.fromkeys(body.symbols))
    cap = runtime.settings.batch_max_symbols
    if len(symbols) > cap:
        raise PayloadTooLarge(f"at most {cap} symbols per batch", code="too_many_symbols")
    records = await store.get_features(symbols)
    out: dict[str, FeaturesPublic | None] = {}
    for symbol in symbols:
        record = records.get(symbol)
        out[symbol] = None if record is None else _public(symbol, record, runtime)
    missing = [symbol for symbol, value in out.items() if value is None]
    return FeaturesBatchPublic(features=out, missing=missing)
