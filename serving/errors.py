"""Typed errors of the HTTP API: each carries its status, an error code and the headers it needs.

    tickcast.errors.TickcastError
    └── ApiError                      status, code, description, headers
        ├── BadRequest            400 invalid_request, invalid_grant, invalid_scope, ...
        ├── Unauthorized          401 invalid_token, invalid_client (WWW-Authenticate)
        ├── Forbidden             403 insufficient_scope (WWW-Authenticate)
        ├── NotFound              404 not_found
        ├── Conflict              409 already_champion, no_history, ...
        ├── PayloadTooLarge       413 too_many_symbols, body_too_large
        ├── Unprocessable         422 invalid_symbol, ...
        ├── RateLimited           429 rate_limited (Retry-After)
        └── ServiceUnavailable    503 unavailable (Retry-After)

Every error answer has one JSON shape, the OAuth 2.0 one (RFC 6749 §5.2) plus a correlation id:
``{"error": code, "error_description": reason, "correlation_id": id}``.
"""

from __future__ import annotations

import math

from tickcast.errors import TickcastError


def _quote(value: str) -> str:
    """A quoted-string for an auth-param (RFC 7235), without quotes or backslashes inside."""
    return '"' + value.replace("\\", "").replace('"', "'") + '"'


class ApiError(TickcastError):
    """An error answered to the caller as ``status`` with ``code`` and ``description``."""

    status = 500
    default_code = "server_error"

    def __init__(
        self, description: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code or self.default_code
        self.description = description
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    """400: the request is malformed or the grant is not valid."""

    status = 400
    default_code = "invalid_request"


class Unauthorized(ApiError):
    """401: no credentials, or credentials that do not verify (RFC 6750 §3)."""

    status = 401
    default_code = "invalid_token"

    def __init__(
        self,
        description: str,
        *,
        code: str | None = None,
        scheme: str = "Bearer",
        bare: bool = False,
    ) -> None:
        code = code or self.default_code
        challenge = f"{scheme} realm={_quote('tickcast')}"
        if scheme == "Bearer" and not bare:  # no error code when no credentials were sent
            challenge += f", error={_quote(code)}, error_description={_quote(description)}"
        super().__init__(description, code=code, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    """403: authenticated, but the token lacks a scope the endpoint needs."""

    status = 403
    default_code = "insufficient_scope"

    def __init__(self, description: str, *, scopes: list[str]) -> None:
        challenge = (
            f"Bearer realm={_quote('tickcast')}, error={_quote(self.default_code)}, "
            f"scope={_quote(' '.join(scopes))}"
        )
        super().__init__(description, headers={"WWW-Authenticate": challenge})


class NotFound(ApiError):
    """404: nothing is known for the thing asked for."""

    status = 404
    default_code = "not_found"


class Conflict(ApiError):
    """409: the request contradicts the current state (e.g. already the champion)."""

    status = 409
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    """413: the request asks for more than the configured cap."""

    status = 413
    default_code = "payload_too_large"


class Unprocessable(ApiError):
    """422: the request is well-formed but a value is invalid."""

    status = 422
    default_code = "invalid_request"


def retry_after_header(seconds: float) -> dict[str, str]:
    """A ``Retry-After`` header in whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class RateLimited(ApiError):
    """429: a rate limit is exhausted; ``Retry-After`` says when to come back."""

    status = 429
    default_code = "rate_limited"

    def __init__(self, description: str, *, retry_after_s: float) -> None:
        super().__init__(description, headers=retry_after_header(retry_after_s))
        self.retry_after_s = retry_after_s


class ServiceUnavailable(ApiError):
    """503: a dependency is down or its circuit is open; ``Retry-After`` says when to retry."""

    status = 503
    default_code = "unavailable"

    def __init__(self, description: str, *, retry_after_s: float) -> None:
        super().__init__(description, headers=retry_after_header(retry_after_s))
        self.retry_after_s = retry_after_s
