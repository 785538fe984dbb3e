"""``tickcast serve``, ``tickcast users`` and ``tickcast token``: run the API and set up callers.

Mount with::

    app.add_typer(serving.cli.app, name="serve")        # tickcast serve [--workers N ...]
    app.add_typer(serving.cli.users_app, name="users")  # tickcast users create NAME --role admin
    app.command("token")(serving.cli.token_command)      # tickcast token NAME

``serve`` runs uvicorn with the factory ``serving.main:service_app`` (settings from the
environment, so every worker process builds the same app), uvloop and httptools, host and
port from Settings (``TICKCAST_API_HOST``, ``TICKCAST_API_PORT``, ``TICKCAST_API_WORKERS``).
Connections are bounded: keep-alive idle time-out, a concurrency limit (503 beyond), and the
header/body read time-outs and header cap of :mod:`serving.protocol` (``TICKCAST_API_*``).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import typer

from tickcast.config import Settings, load_settings, refuse_public_dev_secret
from tickcast.errors import TickcastError

app = typer.Typer(add_completion=False, help="Run the HTTP API (FastAPI on uvicorn).")
users_app = typer.Typer(no_args_is_help=True, add_completion=False, help="API users.")


def _settings() -> Settings:
    try:
        return load_settings()
    except TickcastError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


#: The HTTP protocol ``serve`` gives uvicorn (an import string, so ``--dry-run`` prints it).
GUARDED_HTTPTOOLS = "serving.protocol:GuardedHttpToolsProtocol"


def uvicorn_options(
    settings: Settings, *, host: str | None, port: int | None, workers: int | None
) -> dict[str, object]:
    """The keyword arguments ``serve`` gives ``uvicorn.run`` (shown by ``--dry-run``)."""
    return {
        "app": "serving.main:service_app",
        "factory": True,
        "host": host or settings.api_host,
        "port": port or settings.api_port,
        "workers": workers or settings.api_workers,
        "loop": "uvloop",
        "http": GUARDED_HTTPTOOLS,  # httptools + header/body time-outs (serving/protocol.py)
        "access_log": False,
        "log_level": "warning",
        "proxy_headers": False,  # X-Forwarded-For: TICKCAST_TRUSTED_PROXIES, in the app
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": settings.api_keep_alive_s,
        "limit_concurrency": settings.api_limit_concurrency,
        "h11_max_incomplete_event_size": settings.api_max_header_bytes,
    }


@app.callback(invoke_without_command=True)
def serve_command(
    host: Annotated[str | None, typer.Option(help="Bind address (TICKCAST_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TICKCAST_API_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (TICKCAST_API_WORKERS).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the uvicorn options and exit.")] = False,
) -> None:
    """Serve the API until interrupted."""
    import json

    settings = _settings()
    options = uvicorn_options(settings, host=host, port=port, workers=workers)
    try:
        refuse_public_dev_secret(settings, str(options["host"]))
    except ValueError as exc:
        typer.echo(f"tickcast serve: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        typer.echo(json.dumps(options))
        return
    import uvicorn

    typer.echo(f"tickcast API on http://{options['host']}:{options['port']} "
               f"({options['workers']} worker(s), uvloop + httptools); docs at /docs")  # fmt: skip
    uvicorn.run(**options)  # type: ignore[arg-type]


@users_app.callback()
def users() -> None:
    """API users (stored in Redis, passwords as salted scrypt hashes)."""


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="User name ([A-Za-z0-9_.@-], up to 64).")],
    role: Annotated[str, typer.Option(help="viewer, trader, quant or admin.")] = "viewer",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True,
            envvar="TICKCAST_NEW_USER_PASSWORD", help="At least 12 characters.",
        ),
    ] = "",
) -> None:  # fmt: skip
    """Create an API user (password prompted, or TICKCAST_NEW_USER_PASSWORD)."""
    from serving.security.users import UserError, create_user_command

    try:
        user = create_user_command(_settings(), name, password, role)
    except (UserError, TickcastError, OSError) as exc:
        typer.echo(f"cannot create {name}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {user.username} ({user.role})")


async def _mint(settings: Settings, name: str) -> str:
    from redis.asyncio import Redis

    from serving.circuit import CircuitBreaker
    from serving.security.scopes import scopes_for
    from serving.security.tokens import JwtCodec
    from serving.security.users import UserStore

    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        users = UserStore(
            redis, prefix=settings.redis_key_prefix, breaker=CircuitBreaker("redis", timeout_s=5)
        )
        user = await users.get(name)
    finally:
        await redis.aclose()
    if user is None or user.disabled:
        raise TickcastError(f"no enabled user {name!r} (create one: tickcast users create)")
    codec = JwtCodec.from_settings(settings)
    sid = f"cli-{secrets.token_hex(8)}"
    token, _ = codec.issue(sub=user.subject, role=user.role, scopes=scopes_for(user.role), sid=sid)
    return token


def token_command(
    name: Annotated[str, typer.Argument(help="An existing user.")],
    symbol: Annotated[str, typer.Option(help="Symbol of the example request.")] = "AAPL",
) -> None:
    """Print an access token of user NAME as a ready-to-paste curl line (operators only: it is
    signed with the configured key, valid TICKCAST_ACCESS_TOKEN_TTL_S seconds)."""
    settings = _settings()
    try:
        token = asyncio.run(_mint(settings, name))
    except (TickcastError, OSError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    base = f"http://{settings.api_host}:{settings.api_port}"
    typer.echo(f"curl -s {base}/v1/predictions/{symbol}/latest -H 'Authorization: Bearer {token}'")
