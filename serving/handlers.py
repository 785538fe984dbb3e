"""Exception handlers: every error answer has the shape of ``schemas.common.ErrorPublic``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.circuit import DependencyUnavailable
from serving.errors import ApiError, retry_after_header
from serving.responses import OrjsonResponse

log = structlog.get_logger("serving.errors")

_CODES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(request: Request, code: str, description: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {
        "error": code,
        "error_description": description,
        "correlation_id": getattr(request.state, "correlation_id", None),
        **extra,
    }


async def api_error(request: Request, exc: Exception) -> OrjsonResponse:
    """A typed :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    body = error_body(request, exc.code, exc.description)
    return OrjsonResponse(body, status_code=exc.status, headers=exc.headers)


async def dependency_unavailable(request: Request, exc: Exception) -> OrjsonResponse:
    """A dependency is down or its circuit is open: 503 with Retry-After."""
    assert isinstance(exc, DependencyUnavailable)
    log.warning("dependency_unavailable", dependency=exc.component, reason=str(exc))
    body = error_body(request, "unavailable", f"{exc.component} unavailable, retry later")
    headers = retry_after_header(exc.retry_after_s)
    return OrjsonResponse(body, status_code=503, headers=headers)


async def http_error(request: Request, exc: Exception) -> OrjsonResponse:
    """Framework errors (unknown route, wrong method, missing credentials...)."""
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    body = error_body(request, code, str(exc.detail))
    return OrjsonResponse(body, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> OrjsonResponse:
    """Invalid parameters or body: 422 with each problem's place and reason (inputs not echoed)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"][1:] or first["loc"])
    description = f"{where}: {first['msg']}" if where else str(first["msg"])
    body = error_body(request, "invalid_request", description, errors=errors)
    return OrjsonResponse(body, status_code=422)


async def unexpected_error(request: Request, exc: Exception) -> OrjsonResponse:
    """A bug: logged with its traceback, answered 500 without details."""
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return OrjsonResponse(error_body(request, "server_error", "internal error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(DependencyUnavailable, dependency_unavailable)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
