"""Access tokens: every forged, altered, expired or misdirected token is refused."""

from __future__ import annotations

import base64
import functools
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from serving.security.tokens import InvalidToken, JwtCodec
from tests.unit.serving.conftest import Api, bearer, make_settings
from tickcast.config import Settings
from tickcast.errors import ConfigError

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


def test_issue_then_decode_round_trips() -> None:
    c = codec()
    token, claims = c.issue(sub="user:ann", role="trader", scopes=("history:read",), sid="fam")
    decoded = c.decode(token)
    assert decoded == claims
    assert decoded.scopes == frozenset({"history:read"})
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "at+jwt"}


@pytest.mark.parametrize("case", sorted(forged_tokens()))
def test_forged_tokens_are_refused(case: str) -> None:
    with pytest.raises(InvalidToken):
        codec().decode(forged_tokens()[case])


def test_refusal_reasons_name_the_problem() -> None:
    tokens = forged_tokens()
    reasons = {case: _reason(tokens[case]) for case in ("expired", "wrong audience", "wrong key")}
    assert reasons == {
        "expired": "token expired",
        "wrong audience": "wrong audience",
        "wrong key": "bad signature",
    }
    assert _reason(tokens["alg none"]) == "unexpected algorithm"


def _reason(token: str) -> str:
    try:
        codec().decode(token)
    except InvalidToken as exc:
        return exc.reason
    raise AssertionError("token accepted")


def test_rs256_key_pair(tmp_path: Path, redis_server: object) -> None:
    private, public = rsa_pem()
    (tmp_path / "private.pem").write_bytes(private)
    (tmp_path / "public.pem").write_bytes(public)
    settings = Settings(
        jwt_algorithm="RS256",
        jwt_private_key_path=tmp_path / "private.pem",
        jwt_public_key_path=tmp_path / "public.pem",
    )
    rs = JwtCodec.from_settings(settings)
    token, _ = rs.issue(sub="client:abc", role="viewer", scopes=(), sid="k")
    assert rs.decode(token).sub == "client:abc"
    # An HS256 token whose HMAC secret is the public key (algorithm confusion) is refused.
    confused = jwt.api_jws.PyJWS()
    confused._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[attr-defined]
    header = {"alg": "HS256", "typ": "at+jwt"}
    forged = confused.encode(
        json.dumps(payload()).encode(), public, algorithm="HS256", headers=header
    )
    with pytest.raises(InvalidToken):
        rs.decode(forged)
    # A token signed by another key pair is refused.
    other, _ = rsa_pem()
    with pytest.raises(InvalidToken):
        rs.decode(jwt.encode(payload(), other, algorithm="RS256", headers={"typ": "at+jwt"}))


def test_rs256_mismatched_pair_refused_at_startup(tmp_path: Path) -> None:
    private, _ = rsa_pem()
    _, public = rsa_pem()
    (tmp_path / "private.pem").write_bytes(private)
    (tmp_path / "public.pem").write_bytes(public)
    settings = Settings(
        jwt_algorithm="RS256",
        jwt_private_key_path=tmp_path / "private.pem",
        jwt_public_key_path=tmp_path / "public.pem",
    )
    with pytest.raises(ConfigError, match="unusable"):
        JwtCodec.from_settings(settings)


def test_rs256_needs_key_paths() -> None:
    with pytest.raises(ConfigError, match="RS256"):
        make_settings("redis://127.0.0.1:1/0", jwt_algorithm="RS256")


async def test_forged_tokens_get_401_with_challenge(api: Api) -> None:
    secret = api.settings.jwt_secret.get_secret_value()
    for case, token in forged_tokens(secret).items():
        response = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token))
        assert response.status_code == 401, case
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="tickcast", error="invalid_token"'), case
        assert response.json()["error"] == "invalid_token"
    good, _ = codec(secret).issue(
        sub="user:eve", role="viewer", scopes=("predictions:read",), sid="s"
    )
    ok = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(good))
    assert ok.status_code == 404  # authenticated: the symbol is simply unknown


async def test_missing_and_malformed_authorization_headers(api: Api) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        response = await api.client.get("/v1/predictions/AAPL/latest", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
