"""OAuth flows on a real Redis: grants, rotation, reuse detection, revocation, keys, scopes."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from fastapi import APIRouter

from serving.circuit import CircuitBreaker
from serving.deps import (
    FeaturesReader,
    HistoryReader,
    KeysAdmin,
    ModelsReader,
    ModelsWriter,
    PredictionsReader,
)
from serving.security.users import UserError, UserStore, create_user_command
from tests.support.serving_app import PASSWORD, Api, bearer, make_settings

pytestmark = pytest.mark.integration


async def test_password_grant_issues_access_and_refresh_tokens(api: Api) -> None:
    name = await api.user("trader")
    response = await api.login(name)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == api.settings.access_token_ttl_s
    assert body["scope"] == "features:read history:read predictions:read"
    assert body["refresh_token"].startswith("rt.")
    assert response.headers["Cache-Control"] == "no-store"
    me = await api.client.get("/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["subject"] == f"user:{name}"
    assert me.json()["role"] == "trader"


async def test_bad_credentials_are_refused(api: Api) -> None:
    name = await api.user("viewer")
    for username, password in (
        (name, "wrong-password-123"),
        ("nobody", PASSWORD),
        ("x" * 300, "p"),
    ):
        response = await api.login(username, password)
        assert response.status_code in (400, 422)
        assert "access_token" not in response.text
    wrong = await api.login(name, "wrong-password-123")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"


async def test_password_is_stored_hashed_with_salt(api: Api) -> None:
    a, b = await api.user("viewer"), await api.user("viewer")
    prefix = api.settings.redis_key_prefix
    stored_a = await api.redis.hget(f"{prefix}auth:user:{a}", "pw")
    stored_b = await api.redis.hget(f"{prefix}auth:user:{b}", "pw")
    assert stored_a.startswith("scrypt$")
    assert stored_b.startswith("scrypt$")
    assert PASSWORD not in stored_a
    assert stored_a != stored_b  # same password, different salts


async def test_scope_parameter_narrows_and_cannot_widen(api: Api) -> None:
    name = await api.user("viewer")
    narrow = await api.login(name, scope="features:read")
    assert narrow.json()["scope"] == "features:read"
    token = narrow.json()["access_token"]
    assert (
        await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token))
    ).status_code == 403
    wide = await api.login(name, scope="keys:admin")
    assert wide.status_code == 400
    assert wide.json()["error"] == "invalid_scope"


async def test_unsupported_grant_and_missing_fields(api: Api) -> None:
    for form in (
        {"grant_type": "implicit"},
        {"grant_type": "password", "username": "a"},
        {"grant_type": "refresh_token"},
    ):
        response = await api.client.post("/v1/auth/token", data=form)
        assert response.status_code == 400, form
    unsupported = await api.client.post("/v1/auth/token", data={"grant_type": "implicit"})
    assert unsupported.json()["error"] == "unsupported_grant_type"
    missing = await api.client.post("/v1/auth/token", data={})
    assert missing.status_code == 422
    client = await api.client.post("/v1/auth/token", data={"grant_type": "client_credentials"})
    assert client.status_code == 401
    assert client.json()["error"] == "invalid_client"


async def refresh(api: Api, token: str) -> Any:
    return await api.client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_each_token_is_single_use(api: Api) -> None:
    first = (await api.login(await api.user("viewer"))).json()
    second = await refresh(api, first["refresh_token"])
    assert second.status_code == 200
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["access_token"] != first["access_token"]
    third = await refresh(api, pair["refresh_token"])
    assert third.status_code == 200
    # the token endpoint's refresh_token grant is the same flow
    fourth = await api.client.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": third.json()["refresh_token"]},
    )
    assert fourth.status_code == 200


async def test_refresh_reuse_revokes_the_whole_family(api: Api) -> None:
    first = (await api.login(await api.user("viewer"))).json()
    rotated = (await refresh(api, first["refresh_token"])).json()
    # an attacker replays the first (already rotated) refresh token
    replay = await refresh(api, first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert "reused" in replay.json()["error_description"]
    # ...which revokes the family: the legitimate successor no longer works
    successor = await refresh(api, rotated["refresh_token"])
    assert successor.status_code == 400
    # and neither do the access tokens of the family
    for access in (first["access_token"], rotated["access_token"]):
        response = await api.client.get("/v1/auth/me", headers=bearer(access))
        assert response.status_code == 401
        assert response.json()["error_description"] == "token revoked"
    # another login (another family) is unaffected
    other = (await api.login(await api.user("viewer"))).json()
    assert (
        await api.client.get("/v1/auth/me", headers=bearer(other["access_token"]))
    ).status_code == 200
    # the reuse is in the audit trail
    entries = await api.redis.xrange(f"{api.settings.redis_key_prefix}audit")
    assert any(fields["outcome"] == "reuse_detected" for _, fields in entries)


async def test_refresh_state_has_ttls_and_no_plaintext(api: Api) -> None:
    first = (await api.login(await api.user("viewer"))).json()
    prefix = api.settings.redis_key_prefix
    keys = [key async for key in api.redis.scan_iter(f"{prefix}auth:rt:*")]
    assert keys == [
        f"{prefix}auth:rt:{hashlib.sha256(first['refresh_token'].encode()).hexdigest()}"
    ]
    ttl = await api.redis.ttl(keys[0])
    assert 0 < ttl <= api.settings.refresh_token_ttl_s
    await refresh(api, first["refresh_token"])
    await refresh(api, first["refresh_token"])  # reuse → revocation marker
    markers = [key async for key in api.redis.scan_iter(f"{prefix}auth:revoked:*")]
    assert markers
    assert all([await api.redis.ttl(key) > 0 for key in markers])


async def test_unknown_and_malformed_refresh_tokens(api: Api) -> None:
    for token in ("rt.unknown", "garbage", "rt." + "a" * 400):
        response = await refresh(api, token)
        assert response.status_code == 400, token
    assert (await refresh(api, "")).status_code == 422
    assert (await api.client.post("/v1/auth/refresh", content=b"{bad json")).status_code == 422


async def test_refresh_after_user_disabled_or_downgraded(api: Api) -> None:
    name = await api.user("quant")
    first = (await api.login(name)).json()
    users = UserStore(api.redis, prefix=api.settings.redis_key_prefix, breaker=CircuitBreaker("t"))
    prefix = api.settings.redis_key_prefix
    await api.redis.hset(f"{prefix}auth:user:{name}", "role", "viewer")
    narrowed = (await refresh(api, first["refresh_token"])).json()
    assert narrowed["scope"] == "features:read predictions:read"
    assert await users.set_disabled(name)
    refused = await refresh(api, narrowed["refresh_token"])
    assert refused.status_code == 400
    assert (await api.login(name)).status_code == 400


async def test_revoke_access_token(api: Api) -> None:
    pair = (await api.login(await api.user("viewer"))).json()
    response = await api.client.post("/v1/auth/revoke", data={"token": pair["access_token"]})
    assert response.status_code == 200
    me = await api.client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 401
    # the refresh token still works (RFC 7009 lets revoking an access token leave the grant)
    assert (await refresh(api, pair["refresh_token"])).status_code == 200


async def test_revoke_refresh_token_revokes_family(api: Api) -> None:
    pair = (await api.login(await api.user("viewer"))).json()
    assert (
        await api.client.post("/v1/auth/revoke", data={"token": pair["refresh_token"]})
    ).status_code == 200
    assert (await refresh(api, pair["refresh_token"])).status_code == 400
    assert (
        await api.client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    ).status_code == 401
    # unknown tokens: still 200 (RFC 7009 §2.2)
    assert (await api.client.post("/v1/auth/revoke", data={"token": "whatever"})).status_code == 200


async def test_api_key_lifecycle(api: Api) -> None:
    admin = await api.token("admin")
    created = await api.client.post(
        "/v1/keys", json={"name": "pricing-bot", "role": "trader"}, headers=bearer(admin)
    )
    assert created.status_code == 201
    body = created.json()
    secret, key_id = body["api_key"], body["key_id"]
    assert secret.startswith(f"tck_{key_id}_")
    # stored hashed: the secret appears nowhere in Redis
    prefix = api.settings.redis_key_prefix
    record = await api.redis.hgetall(f"{prefix}auth:key:{key_id}")
    assert record["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    for key in [k async for k in api.redis.scan_iter(f"{prefix}*")]:
        if await api.redis.type(key) == "hash":
            assert secret not in str(await api.redis.hgetall(key))
        elif await api.redis.type(key) == "stream":
            assert secret not in str(await api.redis.xrange(key))
    # listed without secrets
    listed = await api.client.get("/v1/keys", headers=bearer(admin))
    assert listed.status_code == 200
    assert secret not in listed.text
    assert [k["key_id"] for k in listed.json()["keys"]] == [key_id]
    assert "api_key" not in listed.json()["keys"][0]
    # client_credentials with form fields and with HTTP Basic
    form = await api.client.post(
        "/v1/auth/token", data={"grant_type": "client_credentials", "client_secret": secret}
    )
    assert form.status_code == 200
    assert "refresh_token" not in form.json() or form.json()["refresh_token"] is None
    assert form.json()["scope"] == "features:read history:read predictions:read"
    basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    via_basic = await api.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert via_basic.status_code == 200
    machine = form.json()["access_token"]
    me = await api.client.get("/v1/auth/me", headers=bearer(machine))
    assert me.json()["subject"] == f"client:{key_id}"
    # revoke: the key no longer exchanges, and tokens it obtained stop working
    revoked = await api.client.delete(f"/v1/keys/{key_id}", headers=bearer(admin))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    again = await api.client.post(
        "/v1/auth/token", data={"grant_type": "client_credentials", "client_secret": secret}
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert (await api.client.get("/v1/auth/me", headers=bearer(machine))).status_code == 401
    assert (
        await api.client.delete("/v1/keys/0123456789ab", headers=bearer(admin))
    ).status_code == 404
    assert (await api.client.delete("/v1/keys/not-hex", headers=bearer(admin))).status_code == 422


async def test_bad_client_credentials(api: Api) -> None:
    admin = await api.token("admin")
    secret = (
        await api.client.post(
            "/v1/keys", json={"name": "k", "role": "viewer"}, headers=bearer(admin)
        )
    ).json()["api_key"]
    for form in (
        {"client_secret": secret[:-1] + ("A" if secret[-1] != "A" else "B")},
        {"client_secret": "tck_000000000000_" + "A" * 43},
        {"client_secret": secret, "client_id": "ffffffffffff"},
        {"client_secret": "nonsense"},
    ):
        response = await api.client.post(
            "/v1/auth/token", data={"grant_type": "client_credentials", **form}
        )
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    bad_basic = await api.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!"},
    )
    assert bad_basic.status_code == 401


def scoped_router() -> APIRouter:
    """Endpoints that need each scope the lead's routes will use."""
    router = APIRouter(prefix="/v1/scoped")

    @router.get("/predictions")
    async def predictions(_: PredictionsReader) -> dict[str, bool]:
        return {"ok": True}

    @router.get("/features")
    async def features(_: FeaturesReader) -> dict[str, bool]:
        return {"ok": True}

    @router.get("/history")
    async def history(_: HistoryReader) -> dict[str, bool]:
        return {"ok": True}

    @router.get("/models")
    async def models(_: ModelsReader) -> dict[str, bool]:
        return {"ok": True}

    @router.post("/models/promote")
    async def promote(_: ModelsWriter) -> dict[str, bool]:
        return {"ok": True}

    @router.get("/keys")
    async def keys(_: KeysAdmin) -> dict[str, bool]:
        return {"ok": True}

    return router


ALLOWED = {
    "viewer": {"predictions", "features"},
    "trader": {"predictions", "features", "history"},
    "quant": {"predictions", "features", "history", "models"},
    "admin": {"predictions", "features", "history", "models", "models/promote", "keys"},
}


async def test_roles_to_scopes_enforced_per_endpoint(api: Api) -> None:
    api.app.include_router(scoped_router())
    for role, allowed in ALLOWED.items():
        token = await api.token(role)
        for endpoint in ("predictions", "features", "history", "models", "models/promote", "keys"):
            method = api.client.post if endpoint == "models/promote" else api.client.get
            response = await method(f"/v1/scoped/{endpoint}", headers=bearer(token))
            expected = 200 if endpoint in allowed else 403
            assert response.status_code == expected, (role, endpoint)
            if expected == 403:
                assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_create_user_command(redis_url: str) -> None:
    settings = make_settings(redis_url)
    user = create_user_command(settings, "ops@example.com", "a-very-long-password", "admin")
    assert (user.username, user.role, user.disabled) == ("ops@example.com", "admin", False)
    with pytest.raises(UserError, match="exists"):
        create_user_command(settings, "ops@example.com", "a-very-long-password", "admin")
    with pytest.raises(UserError, match="role"):
        create_user_command(settings, "other", "a-very-long-password", "root")
    with pytest.raises(UserError, match="characters"):
        create_user_command(settings, "other", "short", "viewer")
    with pytest.raises(UserError, match="username"):
        create_user_command(settings, "bad name", "a-very-long-password", "viewer")


async def test_app_builds_its_own_clients(redis_url: str) -> None:
    """Without injected clients the lifespan builds and closes its own Redis client."""
    import httpx

    from serving.main import create_app

    app = create_app(make_settings(redis_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 200
