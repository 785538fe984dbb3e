"""Audit trail: admin actions and auth failures are recorded with correlation ids; no secret
ever reaches a log line or the audit stream."""

from __future__ import annotations

import logging

import pytest
import structlog

from serving.audit import sanitize
from tests.support.serving_app import Api, bearer

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "Wrong-Password-Do-Not-Log-9f8e"


async def test_audit_events_and_no_secrets_anywhere(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [api.settings.jwt_secret.get_secret_value(), WRONG_PASSWORD]
    with structlog.testing.capture_logs() as logs:
        admin_name = await api.user("admin")
        await api.login(
            admin_name,
            WRONG_PASSWORD,
        )
        login = (await api.login(admin_name)).json()
        admin = login["access_token"]
        secrets += [admin, login["refresh_token"]]
        rotated = (
            await api.client.post(
                "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}
            )
        ).json()
        secrets += [rotated["access_token"], rotated["refresh_token"]]
        await api.client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
        admin = (await api.login(admin_name)).json()["access_token"]
        secrets.append(admin)
        created = await api.client.post(
            "/v1/keys",
            json={"name": "bot", "role": "viewer"},
            headers={**bearer(admin), "X-Correlation-ID": "keys-1"},
        )
        key_secret, key_id = created.json()["api_key"], created.json()["key_id"]
        secrets.append(key_secret)
        machine = (
            await api.client.post(
                "/v1/auth/token",
                data={"grant_type": "client_credentials", "client_secret": key_secret},
            )
        ).json()["access_token"]
        secrets.append(machine)
        await api.client.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "client_secret": key_secret + "x"},
        )
        await api.client.get("/v1/keys", headers=bearer(machine))  # viewer: 403
        await api.client.get("/v1/keys", headers=bearer(admin + "tampered"))
        await api.client.post("/v1/auth/revoke", data={"token": machine})
        await api.client.delete(f"/v1/keys/{key_id}", headers=bearer(admin))

    entries = [
        fields for _, fields in await api.redis.xrange(f"{api.settings.redis_key_prefix}audit")
    ]
    seen = {(e["action"], e["outcome"]) for e in entries}
    assert {
        ("auth.token", "denied"),
        ("auth.token", "ok"),
        ("auth.refresh", "ok"),
        ("auth.refresh", "reuse_detected"),
        ("keys.create", "ok"),
        ("keys.revoke", "ok"),
        ("auth.forbidden", "denied"),
        ("auth.invalid_token", "denied"),
        ("auth.revoke", "ok"),
    } <= seen
    assert all(e.get("correlation_id") for e in entries)
    create = next(e for e in entries if e["action"] == "keys.create")
    assert (create["correlation_id"], create["key_id"], create["subject"]) == (
        "keys-1",
        key_id,
        f"user:{admin_name}",
    )
    # the same events went to the structlog logger
    logged = [entry for entry in logs if entry.get("event") == "audit"]
    assert len(logged) == len(entries)

    haystacks = [repr(entry) for entry in logs] + [repr(e) for e in entries] + [caplog.text]
    for secret in secrets:
        assert all(secret not in text for text in haystacks), "a secret reached the logs"
    # ...and not a recognisable piece of one either (JWT signature parts)
    for token in (admin, machine):
        assert all(token.split(".")[2] not in text for text in haystacks)


def test_sanitize_refuses_secret_fields_and_drops_none() -> None:
    assert sanitize({"subject": "user:a", "count": 3, "gone": None}) == {
        "subject": "user:a",
        "count": "3",
    }
    for name in ("password", "refresh_token", "api_key", "client_secret", "Authorization"):
        with pytest.raises(ValueError, match="secret"):
            sanitize({name: "x"})


async def test_audit_survives_redis_outage(api: Api) -> None:
    breaker = api.app.state.runtime.redis_breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    with structlog.testing.capture_logs() as logs:
        await api.app.state.runtime.audit.record("keys.create", "ok", subject="user:x", key_id="k")
    events = [entry["event"] for entry in logs]
    assert events == ["audit", "audit_stream_unavailable"]


async def test_floods_are_sampled_per_address_and_summarised(api: Api, clock: list[float]) -> None:
    audit = api.app.state.runtime.audit
    sample = audit.sampler.sample
    for _ in range(sample + 15):
        await audit.record_flood("auth.invalid_token", "denied", client="192.0.2.1", reason="x")
    await audit.record_flood("auth.invalid_token", "denied", client="192.0.2.2", reason="x")
    stream = f"{api.settings.redis_key_prefix}audit"
    entries = [fields for _, fields in await api.redis.xrange(stream)]
    assert len(entries) == sample + 1  # the first `sample` of 192.0.2.1, one of 192.0.2.2
    clock[0] += audit.sampler.window_s + 1  # the window ends: its summary is written
    await audit.record_flood("auth.invalid_token", "denied", client="192.0.2.1", reason="x")
    entries = [fields for _, fields in await api.redis.xrange(stream)]
    summary = [e for e in entries if e["outcome"] == "suppressed"]
    assert len(summary) == 1
    assert (summary[0]["client"], summary[0]["count"]) == ("192.0.2.1", "15")
    assert len(entries) == sample + 3  # + the summary + the first event of the new window
