"""JWT helpers for the token tests: a codec like the API's and the tokens an attacker could try.

Every token of :func:`forged_tokens` must be refused, by the codec (unit tests) and by the API
with a 401 and its challenge (integration tests).
"""

from __future__ import annotations

import base64
import functools
import json
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from serving.security.tokens import JwtCodec

SECRET = "unit-test-secret-that-is-long-enough-0123456789"


def codec(secret: str = SECRET, **overrides: object) -> JwtCodec:
    values: dict[str, object] = {
        "algorithm": "HS256",
        "signing_key": secret,
        "verifying_key": secret,
        "issuer": "tickcast",
        "audience": "tickcast-api",
        "ttl_s": 300,
    }
    values.update(overrides)
    return JwtCodec(**values)  # type: ignore[arg-type]


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def payload(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "tickcast",
        "aud": "tickcast-api",
        "sub": "user:eve",
        "role": "admin",
        "scope": "keys:admin predictions:read",
        "sid": "s",
        "jti": "j",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def rsa_pem() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@functools.cache
def cached_pem() -> tuple[bytes, bytes]:
    """One key pair for the forged tokens (generating RSA keys is slow)."""
    return rsa_pem()


def forged_tokens(secret: str = SECRET) -> dict[str, str]:
    """Tokens an attacker could present (all about ``secret``'s issuer), each to be refused."""

    def issued(**overrides: object) -> str:
        return codec(secret, **overrides).issue(sub="user:eve", role="viewer", scopes=(), sid="s")[
            0
        ]

    good, _ = codec(secret).issue(
        sub="user:eve", role="viewer", scopes=("predictions:read",), sid="s"
    )
    head, body, sig = good.split(".")
    elevated = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    elevated["scope"] = "keys:admin predictions:read"
    private, _ = cached_pem()
    typ = {"typ": "at+jwt"}
    return {
        "alg none": f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(payload())}.",
        "alg none via pyjwt": jwt.encode(payload(), None, algorithm="none", headers=typ),
        "tampered payload": f"{head}.{b64(elevated)}.{sig}",
        "tampered signature": f"{head}.{body}.{sig[:-4]}AAAA",
        "truncated signature": good[:-1],
        "expired": issued(clock=lambda: time.time() - 3600),
        "wrong audience": issued(audience="someone-else"),
        "wrong issuer": issued(issuer="evil"),
        "wrong key": codec("another-secret-that-is-long-enough-012345").issue(
            sub="user:eve", role="viewer", scopes=(), sid="s"
        )[0],
        "RS256 instead of HS256": jwt.encode(payload(), private, algorithm="RS256", headers=typ),
        "not yet valid": issued(clock=lambda: time.time() + 3600),
        "no exp": jwt.encode(
            {k: v for k, v in payload().items() if k != "exp"}, secret, headers=typ
        ),
        "wrong typ": jwt.encode(payload(), secret, algorithm="HS256", headers={"typ": "JWT"}),
        "claims of wrong type": jwt.encode(payload(scope=["keys:admin"]), secret, headers=typ),
        "garbage": "not.a.jwt",
        "huge": "a" * 10_000,
    }
