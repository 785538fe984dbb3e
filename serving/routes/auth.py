"""OAuth 2.0 endpoints: token (password, client_credentials, refresh_token), refresh, revoke."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Body, Form, Header, Response

from serving.deps import AuthDep, ClientAddressDep, CurrentPrincipal, RuntimeDep, enforce_limits
from serving.errors import BadRequest, Unauthorized
from serving.schemas.auth import (
    PrincipalPublic,
    RefreshRequest,
    RevokePublic,
    RevokeRequest,
    TokenPublic,
    TokenRequest,
)
from serving.schemas.common import error_responses
from serving.security.apikeys import KEY_FORMAT
from serving.security.service import TokenGrant

router = APIRouter(prefix="/auth", tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _public(grant: TokenGrant, response: Response) -> TokenPublic:
    response.headers.update(_NO_STORE)
    return TokenPublic(
        access_token=grant.access_token,
        token_type=grant.token_type,
        expires_in=grant.expires_in,
        scope=grant.scope,
        refresh_token=grant.refresh_token,
    )


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an HTTP Basic header (RFC 6749 §2.3.1), if any."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "malformed Basic credentials", code="invalid_client", scheme="Basic"
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials", code="invalid_client", scheme="Basic")
    return unquote(client_id), unquote(secret)


def login_account(form: TokenRequest, authorization: str | None) -> str | None:
    """The account a token request tries, for the per-account throttle: ``user:<name>``
    (password grant) or ``client:<key id>`` (client credentials); None for a refresh."""
    if form.grant_type == "password":
        return f"user:{form.username[:64]}" if form.username else None
    if form.grant_type != "client_credentials":
        return None
    try:
        basic = basic_credentials(authorization)
    except Unauthorized:
        return None
    client_id, secret = basic if basic else (form.client_id, form.client_secret)
    match = KEY_FORMAT.fullmatch(secret or "")
    key_id = match.group(1) if match else client_id
    return f"client:{key_id[:64]}" if key_id else None


@router.post(
    "/token",
    response_model=TokenPublic,
    responses=error_responses(400, 401, 413, 422, 429, 503),
)
async def token(
    form: Annotated[TokenRequest, Form()],
    auth: AuthDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
    response: Response,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> TokenPublic:
    """Obtain tokens: ``password`` (users), ``client_credentials`` (API keys, form fields or
    HTTP Basic), or ``refresh_token`` (same as ``/v1/auth/refresh``).

    Throttled per client address and per account (user name or API key id): 429 with
    Retry-After beyond ``TICKCAST_RATE_LIMIT_AUTH`` / ``TICKCAST_RATE_LIMIT_LOGIN_ACCOUNT``
    requests per window."""
    await enforce_limits(runtime, runtime.auth_limits(client, login_account(form, authorization)))
    if form.grant_type == "password":
        if not form.username or not form.password:
            raise BadRequest("username and password are required")
        grant = await auth.password_grant(form.username, form.password, form.scope)
    elif form.grant_type == "client_credentials":
        basic = basic_credentials(authorization)
        client_id, secret = basic if basic else (form.client_id, form.client_secret)
        if not secret:
            raise Unauthorized("client credentials required", code="invalid_client", scheme="Basic")
        grant = await auth.client_credentials_grant(client_id, secret, form.scope)
    elif form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise BadRequest("refresh_token is required")
        grant = await auth.refresh_grant(form.refresh_token)
    else:
        raise BadRequest("unsupported grant_type", code="unsupported_grant_type")
    return _public(grant, response)


@router.post(
    "/refresh",
    response_model=TokenPublic,
    responses=error_responses(400, 413, 422, 429, 503),
)
async def refresh(
    body: Annotated[RefreshRequest, Body()],
    auth: AuthDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
    response: Response,
) -> TokenPublic:
    """Rotate a refresh token: a new access token and a new single-use refresh token.

    Presenting a refresh token that was already rotated revokes its whole family."""
    await enforce_limits(runtime, runtime.auth_limits(client))
    return _public(await auth.refresh_grant(body.refresh_token), response)


@router.post(
    "/revoke",
    response_model=RevokePublic,
    responses=error_responses(400, 413, 422, 429, 503),
)
async def revoke(
    form: Annotated[RevokeRequest, Form()],
    auth: AuthDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
) -> RevokePublic:
    """Revoke an access token, or a refresh token and its whole family (RFC 7009)."""
    await enforce_limits(runtime, runtime.auth_limits(client))
    await auth.revoke(form.token)
    return RevokePublic()


@router.get("/me", response_model=PrincipalPublic, responses=error_responses(401, 429, 503))
async def me(principal: CurrentPrincipal) -> PrincipalPublic:
    """Who the bearer token belongs to and what it may do."""
    return PrincipalPublic(
        subject=principal.sub,
        role=principal.role,
        scopes=sorted(principal.scopes),
        expires_at=principal.exp,
    )
