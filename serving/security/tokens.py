"""Short-lived JWT access tokens (RFC 9068 profile): issue and verify, pure and offline.

Tokens are signed with HS256 (``jwt_secret``) or RS256 (a PEM key pair). Verification pins
the one configured algorithm (so ``alg: none`` and algorithm confusion fail), and always checks
signature, ``iss``, ``aud``, ``exp``, ``iat`` and the ``at+jwt`` type, and refuses a token
whose lifetime (``exp - iat``) exceeds the configured one plus a small slack, whoever signed
it. Revocation is not checked here: that needs Redis (:mod:`serving.security.sessions`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from tickcast.config import Settings
from tickcast.errors import ConfigError, RequestError

TOKEN_TYPE = "at+jwt"
MAX_TOKEN_LENGTH = 8192
#: Clock skew tolerated on ``exp``/``iat``/``nbf`` (a token is accepted this long past expiry).
LEEWAY_S = 5
#: Default slack on a token's lifetime beyond the configured TTL.
LIFETIME_SLACK_S = 5
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]


class InvalidToken(RequestError):
    """The token is not a valid access token; ``reason`` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified content of an access token."""

    sub: str
    role: str
    scopes: frozenset[str]
    sid: str
    jti: str
    iat: int
    exp: int


_ERRORS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.MissingRequiredClaimError, "missing claim"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "unexpected algorithm"),
]


class JwtCodec:
    """Issues and verifies access tokens for one issuer and audience."""

    def __init__(
        self,
        *,
        algorithm: str,
        signing_key: str | bytes,
        verifying_key: str | bytes,
        issuer: str,
        audience: str,
        ttl_s: int,
        leeway_s: float = LEEWAY_S,
        max_lifetime_s: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self.leeway_s = leeway_s
        self.max_lifetime_s = ttl_s + LIFETIME_SLACK_S if max_lifetime_s is None else max_lifetime_s
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.time) -> JwtCodec:
        """A codec from settings; reads RS256 key files and proves the pair matches."""
        if settings.jwt_algorithm == "RS256":
            private, public = settings.jwt_private_key_path, settings.jwt_public_key_path
            if private is None or public is None:  # refused by Settings already
                raise ConfigError("RS256 needs a private and a public key path")
            try:
                signing: str | bytes = private.read_bytes()
                verifying: str | bytes = public.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read JWT key: {exc}") from None
        else:
            signing = verifying = settings.jwt_secret.get_secret_value()
        codec = cls(
            algorithm=settings.jwt_algorithm,
            signing_key=signing,
            verifying_key=verifying,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
            max_lifetime_s=settings.access_token_ttl_s + settings.token_lifetime_slack_s,
            clock=clock,
        )
        try:
            token, _ = codec.issue(sub="startup-check", role="viewer", scopes=(), sid="-")
            codec.decode(token)
        except (InvalidToken, jwt.PyJWTError, ValueError, TypeError) as exc:
            raise ConfigError(f"JWT keys unusable for {settings.jwt_algorithm}: {exc}") from None
        return codec

    def issue(
        self, *, sub: str, role: str, scopes: frozenset[str] | tuple[str, ...], sid: str
    ) -> tuple[str, AccessClaims]:
        """A signed access token and its claims."""
        now = int(self._clock())
        claims = AccessClaims(
            sub=sub,
            role=role,
            scopes=frozenset(scopes),
            sid=sid,
            jti=secrets.token_hex(16),
            iat=now,
            exp=now + self.ttl_s,
        )
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "role": role,
            "scope": " ".join(sorted(claims.scopes)),
            "sid": sid,
            "jti": claims.jti,
            "iat": now,
            "nbf": now,
            "exp": claims.exp,
        }
        token = jwt.encode(
            payload, self._signing_key, algorithm=self.algorithm, headers={"typ": TOKEN_TYPE}
        )
        return token, claims

    def decode(self, token: str) -> AccessClaims:
        """Verify ``token`` and return its claims, or raise :class:`InvalidToken`."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != self.algorithm:
                raise InvalidToken("unexpected algorithm")
            if header.get("typ") != TOKEN_TYPE:
                raise InvalidToken("not an access token")
            payload = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            for kind, reason in _ERRORS:
                if isinstance(exc, kind):
                    raise InvalidToken(reason) from None
            raise InvalidToken("malformed token") from None
        claims = _claims(payload)
        if claims.exp - claims.iat > self.max_lifetime_s:
            raise InvalidToken("token lifetime too long")
        return claims


def _claims(payload: dict[str, Any]) -> AccessClaims:
    """Typed claims, refusing a payload whose fields have the wrong types."""
    fields = ("sub", "role", "scope", "sid", "jti")
    if not all(isinstance(payload.get(name), str) for name in fields):
        raise InvalidToken("malformed claims")
    if not all(isinstance(payload.get(name), int) for name in ("iat", "exp")):
        raise InvalidToken("malformed claims")
    return AccessClaims(
        sub=payload["sub"],
        role=payload["role"],
        scopes=frozenset(payload["scope"].split()),
        sid=payload["sid"],
        jti=payload["jti"],
        iat=payload["iat"],
        exp=payload["exp"],
    )
