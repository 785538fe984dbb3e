"""Dependencies, declared once as ``Annotated`` aliases for the routes.

``get_principal`` authenticates the bearer token (signature, issuer, audience, expiry — cached
per token until it expires — and revocation), counts the request against the caller's and the
global rate limits (revocation and rate limits in one pipelined Redis round trip), then checks
the scopes the endpoint declares through ``Security(..., scopes=[...])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from serving.errors import Forbidden, RateLimited, Unauthorized
from serving.ratelimit import Limit
from serving.runtime import Runtime
from serving.security.scopes import (
    FEATURES_READ,
    HISTORY_READ,
    KEYS_ADMIN,
    MODELS_READ,
    MODELS_WRITE,
    PREDICTIONS_READ,
    SCOPE_DESCRIPTIONS,
)
from serving.security.service import AuthService, Principal
from serving.store import LatestStore
from tickcast.config import Settings

# Dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a
# thread pool, a thread hand-off per request for what is an attribute read.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token", scopes=SCOPE_DESCRIPTIONS, auto_error=False
)


async def get_runtime(request: Request) -> Runtime:
    """The application's services (built by the lifespan)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    """The application's settings."""
    return runtime.settings


async def get_store(runtime: RuntimeDep) -> LatestStore:
    """The guarded latest-state store."""
    return runtime.store


async def get_auth(runtime: RuntimeDep) -> AuthService:
    """The OAuth service."""
    return runtime.auth


async def client_address(request: Request) -> str:
    """The caller's address: the peer, or behind a trusted proxy the address it forwarded
    (:class:`serving.middleware.ClientAddressMiddleware`)."""
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[LatestStore, Depends(get_store)]
AuthDep = Annotated[AuthService, Depends(get_auth)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]
ClientAddressDep = Annotated[str, Depends(client_address)]


async def enforce_limits(runtime: Runtime, limits: list[Limit]) -> None:
    """Count a request against ``limits``; :class:`RateLimited` when one is exhausted."""
    decision = await runtime.redis_breaker.call(runtime.limiter.hit, limits)
    if not decision.allowed:
        structlog.get_logger("serving.ratelimit").info(
            "rate_limited", limit=limits[0].name, retry_after_s=decision.retry_after_s
        )
        raise RateLimited("rate limit exceeded", retry_after_s=decision.retry_after_s)


async def authorize(
    runtime: Runtime, token: str | None, scopes: Sequence[str], client: str = "unknown"
) -> Principal:
    """The authenticated, rate-limited caller of ``token`` holding every one of ``scopes``.

    Shared by the dependency below and the raw-ASGI fast path (:mod:`serving.fastpath`), so
    both answer exactly alike: 401 (audited), 429 with Retry-After, 403 (audited). ``client``
    is the caller's address: refusals count against its failure budget (then 429).
    """
    if not token:  # counted by AnonymousLimitMiddleware already
        await runtime.auth.refused(client, "auth.invalid_token", "missing token", count=False)
        raise Unauthorized("missing bearer token", bare=True)
    principal, decision = await runtime.auth.authenticate_counted(
        token, runtime.limiter, runtime.request_limits, runtime.redis_breaker, client
    )
    if not decision.allowed:
        structlog.get_logger("serving.ratelimit").info(
            "rate_limited", limit=f"sub:{principal.sub}", retry_after_s=decision.retry_after_s
        )
        raise RateLimited("rate limit exceeded", retry_after_s=decision.retry_after_s)
    if not principal.scopes.issuperset(scopes):
        missing = sorted(set(scopes) - principal.scopes)
        limited = await runtime.auth.refused(
            client, "auth.forbidden", "missing scope", subject=principal.sub,
            missing=" ".join(missing),
        )  # fmt: skip
        raise limited or Forbidden(f"missing scope: {' '.join(missing)}", scopes=list(scopes))
    return principal


async def get_principal(
    security_scopes: SecurityScopes,
    token: TokenDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
) -> Principal:
    """The authenticated, rate-limited caller holding every scope the endpoint needs."""
    return await authorize(runtime, token, security_scopes.scopes, client)


CurrentPrincipal = Annotated[Principal, Security(get_principal)]
PredictionsReader = Annotated[Principal, Security(get_principal, scopes=[PREDICTIONS_READ])]
FeaturesReader = Annotated[Principal, Security(get_principal, scopes=[FEATURES_READ])]
HistoryReader = Annotated[Principal, Security(get_principal, scopes=[HISTORY_READ])]
ModelsReader = Annotated[Principal, Security(get_principal, scopes=[MODELS_READ])]
ModelsWriter = Annotated[Principal, Security(get_principal, scopes=[MODELS_WRITE])]
KeysAdmin = Annotated[Principal, Security(get_principal, scopes=[KEYS_ADMIN])]
