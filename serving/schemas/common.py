"""Shared schema pieces: the symbol type, the error body and documented error answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SYMBOL_PATTERN = r"^[A-Z0-9.\-]{1,12}$"
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]


class ErrorDetail(BaseModel):
    """One validation problem: where (``loc``) and why (``msg``)."""

    loc: list[str]
    msg: str
    type: str


class ErrorPublic(BaseModel):
    """Every error answer (OAuth 2.0 shape plus the request's correlation id)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "error": "invalid_token",
                "error_description": "token expired",
                "correlation_id": "5f0c8a3e2b3d4c1e9a7b6c5d4e3f2a1b",
            }
        }
    )

    error: str = Field(description="Machine-readable code, e.g. invalid_token, rate_limited.")
    error_description: str = Field(description="Why, for a person.")
    correlation_id: str | None = Field(None, description="Echo of X-Correlation-ID.")
    errors: list[ErrorDetail] | None = Field(None, description="Validation problems (422).")


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
_WWW_AUTH = {
    "WWW-Authenticate": {"description": "RFC 6750 challenge.", "schema": {"type": "string"}}
}
_DESCRIPTIONS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Malformed request or invalid grant.", {}),
    401: ("Missing, invalid, expired or revoked credentials.", _WWW_AUTH),
    403: ("The token lacks a required scope.", _WWW_AUTH),
    404: ("Nothing known for this resource.", {}),
    409: ("The request contradicts the current state.", {}),
    413: ("Request larger than allowed.", {}),
    422: ("Invalid parameter or body.", {}),
    429: ("Rate limit exceeded.", _RETRY_AFTER),
    503: ("A dependency is unavailable.", _RETRY_AFTER),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, all with :class:`ErrorPublic`."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, headers = _DESCRIPTIONS[status]
        entry: dict[str, Any] = {"model": ErrorPublic, "description": description}
        if headers:
            entry["headers"] = headers
        out[status] = entry
    return out


#: Errors any authenticated endpoint may answer.
PROTECTED = (400, 401, 403, 413, 422, 429, 503)

#: The schema's own cap of batch look-ups bounds parsing work; the configured cap (413) is lower.
HARD_MAX_BATCH = 10_000
