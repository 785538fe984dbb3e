"""A raw-ASGI fast path for the hottest endpoint, ``GET /v1/predictions/{symbol}/latest``.

Why: FastAPI's request machinery (routing, dependency injection with ``Security`` scopes,
response-model validation) costs about 0.5 ms of CPU per request, which caps one worker near
2,200 requests/s on this machine (see docs/performance.md: raw ASGI is 3-5x
cheaper). The fast path answers the same requests with the same code and the same answers:

* it sits inside the application's middleware (correlation id, HTTP metrics, body cap still
  run around it) and only replaces routing, dependency injection and serialisation;
* authentication, scopes and rate limits are :func:`serving.deps.authorize`, the answer is
  :func:`serving.routes.predictions.latest_answer`, errors go through the application's own
  exception handlers — one implementation, two entry points;
* it takes only requests the route would accept (``GET``, a symbol matching the route's
  pattern) without a query string; anything else (a bad symbol, ``HEAD``, another path,
  ``?explain=true``, whose parsing FastAPI owns) falls through to FastAPI,
  which answers it as documented in the OpenAPI schema;
* it sets ``scope["route"]`` to a reference carrying the route's template, so the HTTP metrics
  carry the same ``route`` label.

A test sends the same requests through both paths and compares status, headers and bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.circuit import DependencyUnavailable
from serving.deps import authorize
from serving.errors import ApiError
from serving.handlers import api_error, dependency_unavailable
from serving.routes.predictions import latest_answer
from serving.runtime import Runtime
from serving.security.scopes import PREDICTIONS_READ

PATH = re.compile(r"^/v1/predictions/([A-Z0-9.\-]{1,12})/latest$")
TEMPLATE = "/v1/predictions/{symbol}/latest"
_SCOPES = (PREDICTIONS_READ,)
_AUTHORIZATION = b"authorization"


def bearer_token(scope: Scope) -> str | None:
    """The bearer token of the request, as FastAPI's ``OAuth2PasswordBearer`` reads it.

    The first ``Authorization`` header; ``None`` without one or with another scheme.
    """
    for name, value in scope.get("headers", ()):
        if name == _AUTHORIZATION:
            header = value.decode("latin-1")
            scheme, _, param = header.partition(" ")
            if not header or scheme.lower() != "bearer":
                return None
            return param.strip()
    return None


@dataclass(frozen=True, slots=True)
class RouteRef:
    """What ``scope["route"]`` holds for a fast-path request: the route's template."""

    path: str = TEMPLATE
    path_format: str = TEMPLATE
    name: str = "latest_prediction"


_ROUTE = RouteRef()


class LatestPredictionFastPath:
    """ASGI middleware answering the latest-prediction route without FastAPI's machinery."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a matching request; pass anything else on to the application."""
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        match = PATH.match(scope["path"])
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
        if match is None or runtime is None or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        symbol = match.group(1)
        scope["route"] = _ROUTE
        scope["path_params"] = {"symbol": symbol}
        client = scope.get("client")
        try:
            principal = await authorize(
                runtime, bearer_token(scope), _SCOPES, client[0] if client else "unknown"
            )
            public = await latest_answer(runtime, principal, symbol)
        except ApiError as exc:
            await (await api_error(Request(scope), exc))(scope, receive, send)
            return
        except DependencyUnavailable as exc:
            await (await dependency_unavailable(Request(scope), exc))(scope, receive, send)
            return
        body = public.model_dump_json()  # what FastAPI's response-model path renders
        await Response(body, media_type="application/json")(scope, receive, send)
