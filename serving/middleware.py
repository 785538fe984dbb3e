"""Pure-ASGI middleware: correlation ids, HTTP latency metrics, a request body cap, the
client address behind trusted proxies, and the budget of requests without a token.

The correlation id comes from the ``X-Correlation-ID`` request header when it is a sane token
(``[A-Za-z0-9._:-]{1,128}``; anything else is replaced, so a header cannot inject log lines),
or is generated; it is bound to structlog's context for the request and echoed back.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.console.sessions import COOKIE
from serving.errors import retry_after_header
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
    """Answers 413 to requests whose body is larger than ``max_bytes``.

    A declared ``Content-Length`` over the cap is refused before the application runs. A body
    without one (``Transfer-Encoding: chunked``) is counted as the application reads it: past
    the cap the read fails, and whatever the application then answers (FastAPI turns a failed
    body read into a 400) is replaced by the 413.
    """

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
        too_large = answered = False

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if too_large:  # the application's answer to the failed read is not sent
                return
            answered = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:  # _TooLarge, or what the application made of it
            if not too_large:
                raise
        if too_large and not answered:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "error": "body_too_large",
            "error_description": f"request body exceeds {self.max_bytes} bytes",
            "correlation_id": scope.get("state", {}).get("correlation_id"),
        }
        await OrjsonResponse(body, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the app when the streamed body passes the cap.

    A private signal of this module (the ``too_large`` flag, not this class, decides the
    413), so outside the ``TickcastError`` root."""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a peer or an X-Forwarded-For hop (``[v6]:port`` and ``v4:port`` too)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ClientAddressMiddleware:
    """Sets ``scope["client"]`` to the real client when the peer is a trusted proxy.

    ``X-Forwarded-For`` is honoured only from a peer inside ``trusted`` (CIDRs; setting
    ``TICKCAST_TRUSTED_PROXIES``): the client is the right-most address of the header that
    is not itself a trusted proxy (the left part is whatever the client wrote), or the
    left-most when every hop is trusted. From any other peer the header is ignored.

    >>> resolve = ClientAddressMiddleware(None, ["10.0.0.0/8"]).resolve
    >>> resolve("10.0.0.2", [b"6.6.6.6, 203.0.113.7, 10.0.0.9"])
    '203.0.113.7'
    >>> resolve("198.51.100.1", [b"203.0.113.7"]) is None
    True
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[str] = ()) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted]

    def _trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip in network for network in self.networks)

    def resolve(self, peer: str, forwarded: Sequence[bytes]) -> str | None:
        """The client address behind ``peer``, or None to keep the peer."""
        if not forwarded or not self._trusted(_ip(peer)):
            return None
        hops = [h for v in forwarded for h in v.decode("latin-1").split(",") if h.strip()]
        client = None
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break  # garbage where an address should be: trust nothing further left
            client = str(ip)
            if not self._trusted(ip):
                break
        return client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            forwarded = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
            address = self.resolve(str(client[0]), forwarded)
            if address is not None:
                scope["client"] = (address, 0)
        await self.app(scope, receive, send)


#: Paths any number of unauthenticated callers may ask for (probes and the scraper).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: The console's static files: served from memory-mapped files, no Redis, no budget.
EXEMPT_PREFIXES = ("/console/static/",)


def has_console_cookie(scope: Scope) -> bool:
    """Whether the request carries a console session cookie (valid or not: an invalid one
    is counted against the failure budget by the console)."""
    marker = COOKIE.encode() + b"="
    return any(name == b"cookie" and marker in value for name, value in scope.get("headers", ()))


def has_bearer(scope: Scope) -> bool:
    """Whether the request carries a bearer token (valid or not)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, param = value.partition(b" ")
            return scheme.lower() == b"bearer" and bool(param.strip())
    return False


class AnonymousLimitMiddleware:
    """429 with Retry-After for requests without a bearer token beyond
    ``rate_limit_unauthenticated`` per client address and window (the probes and the metrics
    scrape excepted). Refusals are audited through the flood sampler; the limiter is
    :class:`serving.ratelimit.AddressLimits` on the application's runtime. Requests with a
    token pay nothing here: theirs are the subject limits and, when refused, the failure
    budget.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if (
            scope["type"] != "http"
            or scope["path"] in EXEMPT_PATHS
            or scope["path"].startswith(EXEMPT_PREFIXES)
            or has_bearer(scope)
            or has_console_cookie(scope)
        ):
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        decision = await runtime.address_limits.unauthenticated(address)
        if decision is None or decision.allowed:
            await self.app(scope, receive, send)
            return
        await runtime.audit.record_flood(
            "auth.rate_limited", "denied", client=address, limit="unauthenticated"
        )
        body = {
            "error": "rate_limited",
            "error_description": "too many requests without a token from this address",
            "correlation_id": scope.get("state", {}).get("correlation_id"),
        }
        headers = retry_after_header(decision.retry_after_s)
        await OrjsonResponse(body, status_code=429, headers=headers)(scope, receive, send)
