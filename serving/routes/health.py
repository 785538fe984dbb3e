"""Liveness, readiness and Prometheus metrics (unversioned, unauthenticated)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Response
from starlette.types import Receive, Scope, Send

from serving.clients import HealthCheck
from serving.deps import RuntimeDep
from serving.readiness import REQUIRED
from serving.schemas.health import CheckPublic, LivePublic, ReadyPublic
from tickcast.metrics import metrics_asgi_app
from tickcast.redaction import redact

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=LivePublic)
async def healthz() -> LivePublic:
    """The process answers."""
    return LivePublic()


#: Longest a /readyz waits for one check (the blocking ones run in threads with their own).
CHECK_TIMEOUT_S = 3.0


async def _run(name: str, check: HealthCheck, timeout_s: float) -> CheckPublic:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            result = await check()
        error = "check returned false" if result is False else None
    except TimeoutError:
        error = "timed out"
    except Exception as exc:  # a failing check is the answer, whatever it raised
        error = redact(f"{type(exc).__name__}: {exc}")[:200]  # unauthenticated: no DSN passwords
    latency = round((time.perf_counter() - started) * 1000, 3)
    return CheckPublic(ok=error is None, required=name in REQUIRED, latency_ms=latency, error=error)


@router.get(
    "/readyz",
    response_model=ReadyPublic,
    responses={503: {"model": ReadyPublic, "description": "A dependency is not ready."}},
)
async def readyz(runtime: RuntimeDep, response: Response) -> ReadyPublic:
    """Each dependency's health (Redis, Kafka, ClickHouse, MLflow), checked concurrently.

    503 only when a required dependency (Redis) is down; another one down is ``degraded``
    (200): the API still answers what does not need it."""
    checks: dict[str, HealthCheck] = {"redis": runtime.clients.redis.ping}
    checks.update(runtime.clients.health_checks)
    timeout = max(CHECK_TIMEOUT_S, runtime.settings.dependency_timeout_s)
    results = await asyncio.gather(*(_run(name, check, timeout) for name, check in checks.items()))
    report = dict(zip(checks, results, strict=True))
    for name, result in report.items():
        runtime.metrics.set_dependency(name, result.ok)
    if all(result.ok for result in results):
        status: Literal["ready", "degraded", "unavailable"] = "ready"
    elif all(result.ok for result in results if result.required):
        status = "degraded"
    else:
        status = "unavailable"
    response.status_code = 503 if status == "unavailable" else 200
    circuits: dict[str, str] = {b.name: b.state for b in runtime.breakers()}
    return ReadyPublic(status=status, checks=report, circuits=circuits)


class MetricsEndpoint:
    """``/metrics``: the runtime's registry through ``tickcast.metrics.metrics_asgi_app``."""

    def __init__(self) -> None:
        self._apps: dict[int, object] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the Prometheus exposition of the application's registry."""
        registry = scope["app"].state.runtime.registry
        app = self._apps.get(id(registry))
        if app is None:
            app = self._apps[id(registry)] = metrics_asgi_app(registry)
        await app(scope, receive, send)  # type: ignore[operator]
