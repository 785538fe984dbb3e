"""Mount the console on the API application: pages, static files, the login redirect."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from serving.console.pages import HERE, LoginRequired, router

#: Where ``make deps`` puts uPlot from npm (``serving/console/package.json``).
VENDOR = HERE / "static" / "vendor"


async def _login_required(request: Request, exc: Exception) -> Response:
    """Pages go to the login form (and back afterwards); data calls answer 401."""
    path = request.url.path
    if path.endswith((".json", "/live")) or request.method != "GET":
        body = {"error": "login_required", "error_description": "log in to the console"}
        return JSONResponse(body, status_code=401)
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)


def mount_console(app: FastAPI) -> None:
    """Add the console's routes and static files to ``app``."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)
