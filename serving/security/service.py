"""The OAuth 2.0 flows: password, client_credentials and refresh_token grants, revocation,
and bearer-token authentication of requests. Every failure and every grant is audited.

Errors follow RFC 6749 §5.2 at the token endpoint (``invalid_grant`` 400, ``invalid_client``
401) and RFC 6750 §3 on resources (``invalid_token`` 401). A request refused 401/403 counts
against its client address's failure budget (:class:`serving.ratelimit.AddressLimits`): once
that is spent the answer is 429 and nothing is audited; refusals are audited sampled per
address (:meth:`serving.audit.AuditLog.record_flood`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.audit import AuditLog, FieldValue
from serving.circuit import CircuitBreaker
from serving.errors import ApiError, BadRequest, RateLimited, Unauthorized
from serving.ratelimit import AddressLimits, Decision, Limit, RateLimiter
from serving.security.apikeys import ApiKey, ApiKeyStore
from serving.security.scopes import ScopeError, grant, scopes_for
from serving.security.sessions import RefreshError, SessionStore, with_role
from serving.security.tokens import AccessClaims, InvalidToken, JwtCodec
from serving.security.users import UserStore


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What the token endpoint answers (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    token_type: str = "Bearer"


Principal = AccessClaims
"""An authenticated caller: the verified claims of its access token."""


class VerifiedTokens:
    """Claims of tokens whose signature was verified, reused until they expire.

    Keyed by the whole token string, so a token whose any byte differs is verified afresh;
    an entry is used only while ``now < exp`` (PyJWT's leeway is not extended). Bounded:
    full means cleared. Revocation is not cached here (it is checked on every request).
    """

    def __init__(self, max_entries: int = 50_000, clock: Callable[[], float] = time.time):
        self.max_entries = max_entries
        self._clock = clock
        self._claims: dict[str, AccessClaims] = {}

    def get(self, token: str) -> AccessClaims | None:
        """Cached claims of ``token`` if it has not expired."""
        claims = self._claims.get(token)
        if claims is None:
            return None
        if self._clock() >= claims.exp:
            del self._claims[token]
            return None
        return claims

    def put(self, token: str, claims: AccessClaims) -> None:
        """Remember verified claims."""
        if len(self._claims) >= self.max_entries:
            self._claims.clear()
        self._claims[token] = claims

    def discard(self, token: str) -> None:
        """Forget ``token``."""
        self._claims.pop(token, None)


class AuthService:
    """Grants tokens and authenticates requests."""

    def __init__(
        self,
        *,
        codec: JwtCodec,
        sessions: SessionStore,
        users: UserStore,
        keys: ApiKeyStore,
        audit: AuditLog,
        address_limits: AddressLimits | None = None,
    ) -> None:
        self.codec = codec
        self.sessions = sessions
        self.users = users
        self.keys = keys
        self.audit = audit
        self.address_limits = address_limits
        self.verified = VerifiedTokens()

    async def refused(
        self, client: str | None, action: str, reason: str, *, count: bool = True,
        subject: str | None = None, **fields: FieldValue,
    ) -> RateLimited | None:  # fmt: skip
        """Account for a request refused 401/403 (``auth.invalid_token``, ``auth.forbidden``).

        Counted (unless ``count`` is false) against the failure budget of the client address:
        once that is spent, returns the :class:`RateLimited` to answer instead, and nothing is
        audited. Otherwise the refusal is audited (sampled per address) and None returned.
        """
        if client is None:
            await self.audit.record(
                action, "denied", subject=subject, correlation_id=None, reason=reason, **fields
            )
            return None
        if count and self.address_limits is not None:
            decision = await self.address_limits.failed(client)
            if decision is not None and not decision.allowed:
                return RateLimited(
                    "too many refused requests from this address",
                    retry_after_s=decision.retry_after_s,
                )
        await self.audit.record_flood(
            action, "denied", client=client, subject=subject, reason=reason, **fields
        )
        return None

    def _access(self, sub: str, role: str, scopes: frozenset[str], sid: str) -> tuple[str, int]:
        token, claims = self.codec.issue(sub=sub, role=role, scopes=scopes, sid=sid)
        return token, claims.exp - claims.iat

    async def _refuse(self, grant_type: str, reason: str, subject: str | None = None) -> None:
        await self.audit.record(
            "auth.token", "denied", subject=subject, grant_type=grant_type, reason=reason
        )

    async def password_grant(self, username: str, password: str, scope: str | None) -> TokenGrant:
        """Log a user in: an access token and the first refresh token of a new family."""
        user = await self.users.authenticate(username, password)
        if user is None:
            await self._refuse("password", "bad credentials", f"user:{username}"[:80])
            raise BadRequest("invalid username or password", code="invalid_grant")
        try:
            scopes = grant(user.role, scope)
        except ScopeError as exc:
            await self._refuse("password", "invalid scope", user.subject)
            raise BadRequest(str(exc), code="invalid_scope") from None
        refresh, family = await self.sessions.start(sub=user.subject, role=user.role, scopes=scopes)
        access, ttl = self._access(user.subject, user.role, scopes, family.family)
        await self.audit.record(
            "auth.token", "ok", subject=user.subject, grant_type="password", sid=family.family
        )
        return TokenGrant(access, ttl, " ".join(sorted(scopes)), refresh)

    async def client_credentials_grant(
        self, client_id: str | None, client_secret: str, scope: str | None
    ) -> TokenGrant:
        """Authenticate a machine client by API key: an access token only (no refresh)."""
        key = await self.keys.verify(client_secret)
        if key is None or (client_id and client_id != key.key_id):
            await self._refuse("client_credentials", "bad client credentials", None)
            raise Unauthorized("invalid client credentials", code="invalid_client", scheme="Basic")
        try:
            scopes = grant(key.role, scope)
        except ScopeError as exc:
            await self._refuse("client_credentials", "invalid scope", key.subject)
            raise BadRequest(str(exc), code="invalid_scope") from None
        access, ttl = self._access(key.subject, key.role, scopes, key.session_id)
        await self.audit.record(
            "auth.token", "ok", subject=key.subject, grant_type="client_credentials"
        )
        return TokenGrant(access, ttl, " ".join(sorted(scopes)))

    async def refresh_grant(self, refresh_token: str) -> TokenGrant:
        """Rotate a refresh token; reuse of a rotated one revokes its whole family."""
        try:
            current = await self.sessions.consume(refresh_token)
        except RefreshError as exc:
            if exc.reused:
                await self.audit.record(
                    "auth.refresh",
                    "reuse_detected",
                    subject=exc.sub,
                    sid=exc.family,
                    reason="family revoked",
                )
            else:
                await self.audit.record(
                    "auth.refresh", "denied", subject=exc.sub or None, reason=exc.reason
                )
            raise BadRequest(exc.reason, code="invalid_grant") from None
        user = None
        if current.sub.startswith("user:"):
            user = await self.users.get(current.sub.removeprefix("user:"))
        if user is None or user.disabled:
            await self.sessions.revoke_session(current.family)
            await self.audit.record(
                "auth.refresh", "denied", subject=current.sub, reason="user unavailable"
            )
            raise BadRequest("user unavailable", code="invalid_grant")
        narrowed = with_role(current, user.role, scopes_for(user.role))
        try:
            refresh = await self.sessions.issue(narrowed)
        except RefreshError as exc:
            raise BadRequest(exc.reason, code="invalid_grant") from None
        access, ttl = self._access(narrowed.sub, narrowed.role, narrowed.scopes, narrowed.family)
        await self.audit.record("auth.refresh", "ok", subject=narrowed.sub, sid=narrowed.family)
        return TokenGrant(access, ttl, " ".join(sorted(narrowed.scopes)), refresh)

    async def revoke(self, token: str) -> None:
        """Revoke an access token or a refresh token's family (RFC 7009: always succeeds)."""
        family = await self.sessions.family_of(token)
        if family is not None:
            await self.sessions.revoke_session(family)
            await self.audit.record("auth.revoke", "ok", sid=family, kind="refresh")
            return
        try:
            claims = self.codec.decode(token)
        except InvalidToken:
            await self.audit.record("auth.revoke", "ignored", reason="unknown token")
            return
        await self.sessions.revoke_access(claims.jti, claims.exp)
        await self.audit.record(
            "auth.revoke", "ok", subject=claims.sub, jti=claims.jti, kind="access"
        )

    async def verify(self, token: str, client: str | None = None) -> AccessClaims:
        """Signature, issuer, audience, expiry and lifetime of ``token`` (cached), or 401
        (audited; 429 once ``client`` spent its failure budget)."""
        claims = self.verified.get(token)
        if claims is not None:
            return claims
        try:
            claims = self.codec.decode(token)
        except InvalidToken as exc:
            limited = await self.refused(client, "auth.invalid_token", exc.reason)
            raise limited or Unauthorized(exc.reason) from None
        self.verified.put(token, claims)
        return claims

    async def _revoked(self, token: str, claims: AccessClaims, client: str | None) -> ApiError:
        self.verified.discard(token)
        limited = await self.refused(
            client, "auth.invalid_token", "token revoked", subject=claims.sub
        )
        return limited or Unauthorized("token revoked")

    async def authenticate(self, token: str, client: str | None = None) -> Principal:
        """The principal of a bearer token, or :class:`Unauthorized` (audited)."""
        claims = await self.verify(token, client)
        if await self.sessions.is_revoked(jti=claims.jti, sid=claims.sid):
            raise await self._revoked(token, claims, client)
        return claims

    async def authenticate_counted(
        self,
        token: str,
        limiter: RateLimiter,
        limits_of: Callable[[str], Sequence[Limit]],
        breaker: CircuitBreaker,
        client: str | None = None,
    ) -> tuple[Principal, Decision]:
        """:meth:`authenticate` and a rate-limit hit in one Redis round trip (the hot path).

        A revoked token's request is not counted against the subject's limits.
        """
        claims = await self.verify(token, client)
        keys = self.sessions.revocation_keys(jti=claims.jti, sid=claims.sid)
        decision = await breaker.call(limiter.gate, limits_of(claims.sub), keys)
        if decision is None:
            raise await self._revoked(token, claims, client)
        return claims, decision

    async def create_key(self, name: str, role: str, *, actor: str) -> tuple[ApiKey, str]:
        """Create an API key (admin action, audited); returns the record and the secret."""
        key, secret = await self.keys.create(name, role, created_by=actor)
        await self.audit.record("keys.create", "ok", subject=actor, key_id=key.key_id, role=role)
        return key, secret

    async def list_keys(self, *, actor: str) -> list[ApiKey]:
        """Every API key without secrets (admin action, audited)."""
        keys = await self.keys.list()
        await self.audit.record("keys.list", "ok", subject=actor, count=len(keys))
        return keys

    async def revoke_key(self, key_id: str, *, actor: str) -> ApiKey | None:
        """Revoke an API key and every access token it obtained (admin action, audited)."""
        key = await self.keys.revoke(key_id)
        if key is None:
            await self.audit.record("keys.revoke", "not_found", subject=actor, key_id=key_id[:40])
            return None
        await self.sessions.revoke_session(key.session_id, self.sessions.access_ttl_s)
        await self.audit.record("keys.revoke", "ok", subject=actor, key_id=key_id)
        return key
