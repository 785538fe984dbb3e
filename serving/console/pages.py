"""The console's pages: login, symbol (live), models, drift, stream, backtests.

Server-rendered (Jinja2) from the same services the API uses, under the same limits; the
only script is ``static/console.js`` (the chart and the live channel) and uPlot, installed
from npm at build time (``make deps``). Pages need a console session (:mod:`.sessions`);
every state-changing form carries the session's CSRF token and must come from this origin.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.responses import StreamingResponse

from serving.circuit import DependencyUnavailable
from serving.console import data
from serving.console.sessions import COOKIE, ConsoleSession
from serving.console.state import ConsoleState
from serving.deps import enforce_limits
from serving.errors import ApiError, Forbidden, RateLimited
from serving.freshness import MalformedRecord, features_public, prediction_public
from serving.routes.models import champion_challenger_test, list_models, promote, rollback
from serving.runtime import Runtime
from serving.schemas.common import SYMBOL_PATTERN
from serving.schemas.models import PromoteRequest, RollbackRequest
from serving.security.scopes import MODELS_WRITE
from serving.security.tokens import AccessClaims
from tickcast.errors import RequestError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def utc(ms: object, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Epoch milliseconds as UTC text (``–`` for nothing)."""
    from datetime import UTC, datetime

    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)


templates.env.filters["utc"] = utc
router = APIRouter(prefix="/console", include_in_schema=False)
log = structlog.get_logger("serving.console")

LOGIN_COOKIE = "tickcast_console_login"
#: Content-Security-Policy of every console page: nothing from elsewhere, no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
#: Seconds between keep-alive comments on a live stream (proxies drop silent connections).
KEEPALIVE_S = 15.0
#: Chart ranges a page offers, in days.
RANGES = (1, 7, 30, 365, 3650)


class LoginRequired(RequestError):
    """No valid console session: pages redirect to the login form, data calls answer 401."""


class CsrfRefused(ApiError):
    """403: a state-changing form without this session's CSRF token, or from elsewhere."""

    status = 403
    default_code = "csrf_failed"


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _console(request: Request) -> ConsoleState:
    console: ConsoleState = request.app.state.console
    return console


def _secure(request: Request) -> bool:
    mode = _runtime(request).settings.console_secure_cookie
    if mode != "auto":
        return mode == "always"
    return request.url.scheme == "https"


def _same_origin(request: Request) -> bool:
    """A state-changing request must name this origin (Origin, else Referer)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].split("/", 1)[0] == host


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page with the console's security headers."""
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    response = templates.TemplateResponse(
        request, name, {"session": session, "page": name.removesuffix(".html"), **context},
        status_code=status_code,
    )  # fmt: skip
    return _harden(response)


def _harden(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


async def current_session(request: Request) -> ConsoleSession:
    """The console session of the request's cookie, counted against the user's limits."""
    runtime = _runtime(request)
    session = await _console(request).sessions.load(request.cookies.get(COOKIE))
    revoked = session is not None and await runtime.auth.sessions.is_revoked(
        jti="console", sid=session.sid
    )
    if session is None or revoked:
        if request.cookies.get(COOKIE):  # a stale or forged cookie spends the failure budget
            address = request.client.host if request.client else "unknown"
            decision = await runtime.address_limits.failed(address)
            if decision is not None and not decision.allowed:
                raise RateLimited("too many refused requests", retry_after_s=decision.retry_after_s)
        raise LoginRequired
    await enforce_limits(runtime, runtime.request_limits(session.sub))
    request.state.console_session = session
    return session


SessionDep = Annotated[ConsoleSession, Depends(current_session)]


def principal_of(session: ConsoleSession) -> AccessClaims:
    """The session as the API's routes see a caller."""
    now = int(time.time())
    return AccessClaims(
        session.sub, session.role, frozenset(session.scopes), session.sid, "console", now, now
    )


def _csrf(session: ConsoleSession, request: Request, token: str | None) -> None:
    if not session.csrf_ok(token) or not _same_origin(request):
        raise CsrfRefused("the form's CSRF token or origin is not this console's")


# ----------------------------------------------------------------------------- login


@router.get("/login")
async def login_form(request: Request, next: str = "/console/symbols") -> Response:
    """The login form (a login-CSRF token in a cookie and in the form)."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", csrf=token, next=_safe_next(next), error=None)
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=900, httponly=True, samesite="strict",
        secure=_secure(request), path="/console",
    )  # fmt: skip
    return response


def _safe_next(target: str) -> str:
    return target if target.startswith("/console/") and "//" not in target else "/console/symbols"


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=256)] = "/console/symbols",
) -> Response:
    """Check the user's password (the API's throttles apply) and start a session."""
    runtime = _runtime(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf) or not _same_origin(request):
        error = "The form expired or came from elsewhere: reload the page."
        return render(request, "login.html", 403, csrf="", next="/console/symbols", error=error)
    client = request.client.host if request.client else "unknown"
    await enforce_limits(runtime, runtime.auth_limits(client, f"user:{username}"))
    try:
        grant = await runtime.auth.password_grant(username, password, None)
        claims = await runtime.auth.verify(grant.access_token)
    except ApiError:
        return render(request, "login.html", 401, csrf=csrf, next=_safe_next(next),
                      error="Wrong user name or password.")  # fmt: skip
    cookie = await _console(request).sessions.create(
        sub=claims.sub, role=claims.role, scopes=claims.scopes, sid=claims.sid
    )
    await runtime.audit.record("console.login", "ok", subject=claims.sub, sid=claims.sid)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, cookie, max_age=runtime.settings.console_session_max_s, httponly=True,
        samesite="strict", secure=_secure(request), path="/console",
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(
    request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=64)] = ""
) -> Response:
    """End the session and the token family it logged in with."""
    _csrf(session, request, csrf)
    runtime = _runtime(request)
    await _console(request).sessions.end(request.cookies.get(COOKIE))
    await runtime.auth.sessions.revoke_session(session.sid)
    await runtime.audit.record("console.logout", "ok", subject=session.sub, sid=session.sid)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


# ----------------------------------------------------------------------------- symbols


@router.get("")
@router.get("/")
async def home() -> Response:
    """The symbol page is the console's home."""
    return RedirectResponse("/console/symbols", status_code=303)


@router.get("/symbols")
async def symbols(
    request: Request, session: SessionDep, q: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    """Jump to a symbol, or list the symbols the worker keeps features for."""
    wanted = q.strip().upper()
    if wanted:
        if re.fullmatch(SYMBOL_PATTERN, wanted):
            return RedirectResponse(f"/console/symbols/{wanted}", status_code=303)
        return render(request, "symbols.html", 400, symbols=[], query=q,
                      error=f"{q!r} is not a symbol (A-Z, 0-9, '.', '-'; 1 to 12)")  # fmt: skip
    known = await data.known_symbols(_runtime(request))
    return render(request, "symbols.html", symbols=known, query="", error=None)


async def _latest(runtime: Runtime, symbol: str, fresh: bool = False) -> dict[str, Any]:
    """The latest prediction and features of ``symbol`` as the page shows them (``fresh``:
    past the store's cache when the store can, after the worker said it wrote them)."""
    now = runtime.clients.clock()
    stale = runtime.settings.stale_after_s
    read_now = getattr(runtime.store.inner, "read_now", None)
    if fresh and read_now is not None:
        record, features = await runtime.store.breaker.call(read_now, symbol)
    else:
        record = await runtime.store.get_prediction(symbol)
        features = (await runtime.store.get_features([symbol])).get(symbol)
    out: dict[str, Any] = {"symbol": symbol, "prediction": None, "features": None}
    try:
        if record is not None:
            out["prediction"] = prediction_public(
                symbol, record, now_s=now, stale_after_s=stale
            ).model_dump()
        if features is not None:
            out["features"] = features_public(
                symbol, features, now_s=now, stale_after_s=stale
            ).model_dump()
    except MalformedRecord as exc:
        log.error("malformed_store_record", symbol=symbol, reason=str(exc))
        out["error"] = "the store returned a malformed record"
    return out


@router.get("/symbols/{symbol}")
async def symbol_page(
    request: Request,
    session: SessionDep,
    symbol: str,
    days: Annotated[int, Query(ge=1, le=3650)] = 365,
) -> Response:
    """The latest prediction and features, live, and the history chart."""
    if not re.fullmatch(SYMBOL_PATTERN, symbol):
        return render(request, "symbols.html", 400, symbols=[], query=symbol,
                      error=f"{symbol!r} is not a symbol")  # fmt: skip
    latest = await _latest(_runtime(request), symbol)
    return render(request, "symbol.html", symbol=symbol, latest=latest, days=days, ranges=RANGES)


@router.get("/symbols/{symbol}/latest.json")
async def symbol_latest(request: Request, session: SessionDep, symbol: str) -> Response:
    """What the live channel sends, on demand (the page's first paint and a reconnect)."""
    return JSONResponse(await _latest(_runtime(request), symbol, fresh=True))


@router.get("/symbols/{symbol}/series.json")
async def symbol_series(
    request: Request,
    session: SessionDep,
    symbol: str,
    days: Annotated[int, Query(ge=1, le=3650)] = 365,
    end_ms: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> Response:
    """Closes, the champion's P(up) and outcomes over ``days`` up to ``end_ms`` (default: the
    symbol's latest prediction, so a replayed history shows without picking dates)."""
    series = await data.series(_runtime(request), _console(request).reader, symbol, days, end_ms)
    return JSONResponse(series)


@router.get("/symbols/{symbol}/live")
async def symbol_live(request: Request, session: SessionDep, symbol: str) -> Response:
    """Server-sent events: the latest state each time the worker updates ``symbol``."""
    runtime = _runtime(request)
    feed = _console(request).live

    async def events() -> AsyncIterator[bytes]:
        queue = feed.watch(symbol)
        try:
            yield b"retry: 2000\n\n"
            while True:
                try:
                    await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                try:
                    latest = await _latest(runtime, symbol, fresh=True)
                except DependencyUnavailable:
                    continue  # the next notice reads again
                latest["sent_at"] = int(time.time() * 1000)
                yield f"event: update\ndata: {json.dumps(latest)}\n\n".encode()
        finally:
            feed.unwatch(symbol, queue)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


# ----------------------------------------------------------------------------- models


@router.get("/models")
async def models_page(request: Request, session: SessionDep, notice: str = "") -> Response:
    """Champion and challengers with online metrics, the promotion test, model events."""
    runtime = _runtime(request)
    principal = principal_of(session)
    models = await list_models(principal, runtime)
    test = await champion_challenger_test(principal, runtime)
    events = await data.model_events(runtime, _console(request).reader)
    return render(
        request, "models.html", models=models, test=test, events=events,
        may_write=session.may(MODELS_WRITE), notice=notice[:300],
    )  # fmt: skip


@router.post("/models/action")
async def models_action(
    request: Request,
    session: SessionDep,
    action: Annotated[str, Form(pattern="^(promote|rollback)$")],
    name: Annotated[str, Form(max_length=128)],
    version: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
    csrf: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Promote or roll back from the page: admins only, confirmed, audited (the API's route)."""
    _csrf(session, request, csrf)
    if not session.may(MODELS_WRITE):
        raise Forbidden("your role may not change champions", scopes=[MODELS_WRITE])
    if confirm != "yes":
        return RedirectResponse("/console/models?notice=Not+confirmed:+nothing+changed", 303)
    runtime = _runtime(request)
    principal = principal_of(session)
    why = reason or "from the console"
    try:
        if action == "promote":
            body = PromoteRequest(name=name, version=version, reason=why, learner=None)
            result = await promote(body, principal, runtime, request)
        else:
            back = RollbackRequest(name=name, version=version or None, reason=why)
            result = await rollback(back, principal, runtime, request)
        notice = f"{action} done: {name} version {result.event.version}"
    except ApiError as exc:
        notice = f"{action} refused: {exc.description}"
    return RedirectResponse(f"/console/models?notice={quote(notice[:300])}", 303)


# ----------------------------------------------------------------------------- drift, stream


@router.get("/drift")
async def drift_page(request: Request, session: SessionDep) -> Response:
    """Feature × window PSI heatmap with the warn and alert thresholds."""
    runtime = _runtime(request)
    grid = await data.drift_grid(runtime, _console(request).reader)
    return render(
        request, "drift.html", grid=grid, warn=runtime.settings.drift_psi_warn,
        alert=runtime.settings.drift_psi_alert,
    )  # fmt: skip


@router.get("/stream")
async def stream_page(request: Request, session: SessionDep) -> Response:
    """Lag per group and partition, throughput, dead letters by reason, dependencies."""
    runtime = _runtime(request)
    return render(request, "stream.html", stream=await data.stream_state(runtime))


# ----------------------------------------------------------------------------- backtests


@router.get("/backtests")
async def backtests_page(request: Request, session: SessionDep) -> Response:
    """Backtest reports with their headline metrics."""
    reports = await asyncio.to_thread(data.backtest_reports, _runtime(request).settings)
    return render(request, "backtests.html", reports=reports)


@router.get("/backtests/{name}")
async def backtest_report(request: Request, session: SessionDep, name: str) -> Response:
    """One report as its HTML file (sandboxed: no script runs in it)."""
    path = data.backtest_report_path(_runtime(request).settings, name)
    if path is None:
        return render(request, "symbols.html", 404, symbols=[], query="",
                      error=f"no backtest report named {name!r}")  # fmt: skip
    body = await asyncio.to_thread(path.read_text, encoding="utf-8")
    response = HTMLResponse(body)
    _harden(response)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src data:; " \
        "style-src 'unsafe-inline'"  # fmt: skip
    return response
