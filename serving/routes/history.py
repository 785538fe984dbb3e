"""Prediction and outcome history of a symbol (ClickHouse), paginated by cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.deps import HistoryReader, RuntimeDep
from serving.errors import BadRequest
from serving.history import HistoryQuery, HistoryQueryError, Kind
from serving.schemas.common import PROTECTED, SYMBOL_PATTERN, error_responses
from serving.schemas.predictions import HistoryPage, HistoryRow
from sinks.history import MAX_CURSOR_LENGTH, InvalidCursor

router = APIRouter(tags=["history"])

MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
SymbolPath = Annotated[
    str, Path(pattern=SYMBOL_PATTERN, description="Ticker: A-Z, 0-9, '.', '-'; 1 to 12.")
]
StartQuery = Annotated[int, Query(ge=0, le=MAX_MS, description="Range start, epoch ms.")]
EndQuery = Annotated[int, Query(ge=0, le=MAX_MS, description="Range end (exclusive), epoch ms.")]
ModelQuery = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$", description="Only this registered model."),
]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Rows per page.")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="The previous page's next_cursor, with the same symbol, range, filters "
        "and limit.",
    ),
]
WithOutcomesQuery = Annotated[bool, Query(description="Join each outcome (null until known).")]
RESPONSES = error_responses(*PROTECTED)


async def _page(
    runtime: RuntimeDep,
    kind: Kind,
    symbol: str,
    start: int,
    end: int,
    model: str | None,
    limit: int,
    cursor: str | None,
    with_outcomes: bool = False,
) -> HistoryPage:
    if start >= end:
        raise BadRequest(f"start ({start}) must be before end ({end})", code="invalid_range")
    query = HistoryQuery(symbol, start, end, kind, with_outcomes, model, cursor, limit)
    try:
        page = await runtime.history.page(query)
    except InvalidCursor as exc:
        raise BadRequest(str(exc), code="invalid_cursor") from None
    except HistoryQueryError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    rows = [HistoryRow.model_validate(row) for row in page.rows]
    return HistoryPage(
        symbol=symbol, kind=kind, start=start, end=end, rows=rows, next_cursor=page.next_cursor
    )


@router.get("/predictions/{symbol}/history", response_model=HistoryPage, responses=RESPONSES)
async def prediction_history(
    symbol: SymbolPath,
    _: HistoryReader,
    runtime: RuntimeDep,
    start: StartQuery,
    end: EndQuery,
    model: ModelQuery = None,
    with_outcomes: WithOutcomesQuery = False,
    limit: LimitQuery = 500,
    cursor: CursorQuery = None,
) -> HistoryPage:
    """Predictions of ``symbol`` in ``[start, end)`` by every model, oldest first.

    Pages are keyset-paginated on (time, model, version, horizon): pass ``next_cursor`` back
    as ``cursor`` with the same range, filters and limit; pages never skip or repeat rows.
    400 ``invalid_range`` when ``start >= end``, 400 ``invalid_cursor`` for a cursor this API
    did not give for this query (cursors are signed and tied to it), 400 ``invalid_query``
    when ClickHouse refuses the query for what it asks, 503 with Retry-After when ClickHouse
    is unavailable.
    """
    return await _page(
        runtime, "predictions", symbol, start, end, model, limit, cursor, with_outcomes
    )


@router.get("/outcomes/{symbol}/history", response_model=HistoryPage, responses=RESPONSES)
async def outcome_history(
    symbol: SymbolPath,
    _: HistoryReader,
    runtime: RuntimeDep,
    start: StartQuery,
    end: EndQuery,
    model: ModelQuery = None,
    limit: LimitQuery = 500,
    cursor: CursorQuery = None,
) -> HistoryPage:
    """Outcomes (realized return, hit, loss, strategy return) of ``symbol`` in ``[start, end)``.

    Same pagination and errors as the prediction history.
    """
    return await _page(runtime, "outcomes", symbol, start, end, model, limit, cursor)
