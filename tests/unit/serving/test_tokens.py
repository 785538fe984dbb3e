"""Access tokens: every forged, altered, expired or misdirected token is refused."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from serving.security.tokens import InvalidToken, JwtCodec
from tests.support.forged_tokens import codec, forged_tokens, payload, rsa_pem
from tests.support.serving_app import make_settings
from tickcast.config import Settings
from tickcast.errors import ConfigError


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


def test_rs256_key_pair(tmp_path: Path) -> None:
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
