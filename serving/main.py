"""The API application factory: ``uvicorn --factory serving.main:create_app``."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from fastapi import FastAPI
from redis.exceptions import RedisError
from starlette.routing import Route

from serving.clients import Clients, StoreFactory, build_clients, close_clients
from serving.console.mount import mount_console
from serving.console.state import ConsoleState
from serving.fastpath import LatestPredictionFastPath
from serving.handlers import install_error_handlers
from serving.middleware import (
    AnonymousLimitMiddleware,
    BodySizeLimitMiddleware,
    ClientAddressMiddleware,
    CorrelationIdMiddleware,
    HttpMetricsMiddleware,
)
from serving.routes import api_router, health
from serving.runtime import Runtime, build_runtime
from tickcast.config import Settings, load_settings
from tickcast.tracing import active as active_tracing


async def warm_up(runtime: Runtime, timeout_s: float = 2.0) -> None:
    """Best effort at startup: load the gate script and open Redis connections, so the first
    burst of requests does not pay for them (and time out). Redis down is not an error here."""
    store_ping = getattr(runtime.clients.store, "ping", None)
    try:
        async with asyncio.timeout(timeout_s):
            await runtime.limiter.warm_up()
            await asyncio.gather(*(runtime.clients.redis.ping() for _ in range(4)))
            if store_ping is not None:
                await asyncio.gather(*(store_ping() for _ in range(4)))
    except (TimeoutError, OSError, RedisError) as exc:
        structlog.get_logger("serving").warning("warm_up_failed", error=type(exc).__name__)


def lifespan(
    settings: Settings,
    clients: Clients | None,
    store_factory: StoreFactory | None = None,
    customize: Callable[[Clients], None] | None = None,
    freeze_gc: bool = False,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Build clients (unless given) and services at startup; close what was built at shutdown.

    ``freeze_gc`` (a served process) freezes the start-up heap out of the cyclic collector."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        built = clients or build_clients(settings, store_factory=store_factory)
        if customize is not None:
            customize(built)
        app.state.runtime = runtime = build_runtime(settings, built)
        await warm_up(runtime)
        if freeze_gc:
            # Everything built so far lives as long as the process: move it out of the
            # collector's reach, so a full collection walks only what requests allocate
            # (~150k start-up objects made each gen-2 collection a ~40 ms stall of every
            # request in flight). Not for apps built in tests: frozen garbage is never freed.
            gc.collect()
            gc.freeze()
        app.state.console = console = ConsoleState.build(
            settings, runtime.clients.redis, runtime.redis_breaker
        )
        flusher = asyncio.create_task(runtime.audit.flush_periodically())
        try:
            yield
        finally:
            flusher.cancel()
            await console.close()
            await runtime.audit.flush(everything=True)  # the summaries of sampled floods
            if built.owned:
                await close_clients(built)

    return run


def create_app(
    settings: Settings | None = None,
    *,
    clients: Clients | None = None,
    store_factory: StoreFactory | None = None,
    customize: Callable[[Clients], None] | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """The tickcast API.

    ``clients`` (for tests) are used as given and not closed; otherwise the lifespan builds
    them, with the store from ``store_factory(redis, settings)`` — by default the worker's
    Redis layout (:class:`serving.redis_store.RedisLatestStore`). ``customize(clients)`` runs
    on the clients before the services are built (tests put fakes into the seams there).
    """
    settings = settings or load_settings()
    app = FastAPI(
        title="tickcast API",
        version="1",
        description="Latest predictions and features of tickcast. See docs/api.md.",
        lifespan=lifespan(settings, clients, store_factory, customize, freeze_gc),
    )
    # Added first, so innermost: the middleware below still runs around the fast path.
    if settings.api_fast_path:
        app.add_middleware(LatestPredictionFastPath)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(AnonymousLimitMiddleware)
    app.add_middleware(CorrelationIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware)
    if settings.trusted_proxies:  # outermost: everything below sees the real client
        app.add_middleware(ClientAddressMiddleware, trusted=settings.trusted_proxies)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(api_router)
    app.router.routes.append(Route("/metrics", health.MetricsEndpoint(), include_in_schema=False))
    if settings.console_enabled:
        mount_console(app)
    tracing = active_tracing()
    if tracing is not None:  # outermost: the server span covers every middleware
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracing.provider, excluded_urls="/metrics,/healthz,/readyz"
        )
    return app


def service_app() -> FastAPI:
    """The factory ``tickcast serve`` gives uvicorn: settings from the environment, and the
    process's structlog set-up (each uvicorn worker is a fresh process)."""
    from tickcast.logging import configure_logging
    from tickcast.tracing import configure as configure_tracing

    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    configure_tracing("api", settings)  # on only when the OTEL_* variables ask for it
    return create_app(settings, freeze_gc=True)
