"""Pure-ASGI middleware: correlation ids, HTTP latency metrics and a request body cap.

The correlation id comes from the ``X-Correlation-ID`` request header when it is a sane token
(``[A-Za-z0-9._:-]{1,128}``; anything else is replaced, so a header cannot inject log lines),
or is generated; it is bound to structlog's context for the request and echoed back.
"""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.responses import OrjsonResponse
from tickcast.logging import new_correlation_id

HEADER = "X-Correlation-ID"
_HEADER_RAW = HEADER.lower().encode()
_VALID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def correlation_id_of(scope: Scope) -> str:
    """The request's correlation id: the caller's when valid, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER_RAW and _VALID.fullmatch(value):
            return str(value.decode())
    return new_correlation_id()


class CorrelationIdMiddleware:
    """Binds ``correlation_id`` (and the client address) to the log context of each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = correlation_id_of(scope)
        scope.setdefault("state", {})["correlation_id"] = cid
        client = scope.get("client")
        raw = cid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((_HEADER_RAW, raw))
            await send(message)

        with structlog.contextvars.bound_contextvars(
            correlation_id=cid, client=client[0] if client else None
        ):
            await self.app(scope, receive, send_with_id)


def route_template(scope: Scope) -> str:
    """The matched route's full path template (``unmatched`` when no route matched).

    A route of an included router knows only its own part of the template, so the prefix is
    taken from the request path: what is left once the route's rendered part is cut off.
    """
    route: Any = scope.get("route")
    inner = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not inner:
        return "unmatched"
    path: str = scope.get("path", "")
    try:
        rendered = inner.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return str(inner)
    if path.endswith(rendered):
        return path[: len(path) - len(rendered)] + inner
    return str(inner)


class HttpMetricsMiddleware:
    """Observes each request's latency (ms) per route template, method and status.

    The route is the matched template (``/v1/predictions/{symbol}/latest``), never the raw
    path, so the label set stays bounded; unmatched paths are ``unmatched``. The metrics object
    is looked up on the application's runtime (built in the lifespan).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = route_template(scope)
            runtime = getattr(scope["app"].state, "runtime", None)
            if runtime is not None:
                elapsed_ms = (time.perf_counter() - started) * 1000
                runtime.metrics.observe_http(template, scope["method"], status, elapsed_ms)


class BodySizeLimitMiddleware:
    """Answers 413 to requests whose body is larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = 1 << 20) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._too_large(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "error": "body_too_large",
            "error_description": f"request body exceeds {self.max_bytes} bytes",
            "correlation_id": scope.get("state", {}).get("correlation_id"),
        }
        await OrjsonResponse(body, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the app when the streamed body passes the cap."""
