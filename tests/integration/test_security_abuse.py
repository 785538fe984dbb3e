"""The outside probe's abuse findings, replayed against the real API: real Redis, history from
chDB through the sink's read endpoint, and (for connection-level guards) a real uvicorn server
with the protocol ``tickcast serve`` uses. Each test fails when its protection is removed.

| finding                                           | test                                    |
| 1e30 cursor opens the ClickHouse circuit for all  | test_probe_cursor_...                   |
| cursor of one query replayed on another           | test_a_cursor_replayed_on_another_...   |
| unauthenticated flood: no limit, one audit each   | test_unauthenticated_flood_...          |
| failed-token flood                                | test_failed_token_flood_...             |
| revoked key's token works 5 s more                | test_revoked_key_token_...              |
| login throttle per address only                   | test_login_is_throttled_per_account     |
| X-Forwarded-For                                   | test_forwarded_for_...                  |
| chunked body over 1 MiB answered 400              | test_oversized_chunked_body_is_413      |
| no cap on token lifetime                          | test_token_lifetime_over_the_max_is_401 |
| slowloris, header size, concurrency               | test_slow_headers_..., test_idle_..., ...|
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from serving.clients import Clients
from serving.history import ClickHouseHistory
from serving.main import create_app
from serving.protocol import GuardedHttpToolsProtocol, RequestLimits
from serving.redis_pool import redis_client
from serving.redis_store import RedisLatestStore, blob_client
from serving.security.scopes import scopes_for
from serving.security.tokens import JwtCodec
from serving.security.users import create_user
from sinks.clickhouse import connect
from sinks.clickhouse_sink import ClickHouseConnector, ClickHouseSink, SinkBatch
from sinks.history import ReadEndpoint
from sinks.tables import PREDICTIONS, prepare_tables
from tests.support.ports import free_port
from tests.support.serving_fakes import FakeRegistry, RecordingPublisher
from tickcast.config import Settings

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000
PASSWORD = "a-long-integration-password-7"  # test fixture only
HISTORY = "/v1/predictions/{symbol}/history"


def configured(settings: Settings, **changes: Any) -> Settings:
    """The test's namespaced settings with ``changes`` (fast scrypt: tests hash passwords)."""
    return settings.model_copy(update={"password_scrypt_n": 2**14, **changes})


@asynccontextmanager
async def running(settings: Settings, *, history_url: str | None = None) -> AsyncIterator[Any]:
    """The app on the real Redis (and chDB history through ``history_url``), lifespan run."""
    redis = redis_client(settings)
    store = RedisLatestStore(blob_client(settings), prefix=settings.redis_key_prefix, owned=True)
    clients = Clients(
        redis=redis,
        store=store,
        history=ClickHouseHistory(settings, url=history_url) if history_url else None,
        models=FakeRegistry(),
        publisher=RecordingPublisher(),
    )
    app = create_app(settings, clients=clients)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await store.close()
        await redis.aclose()


def http(app: Any, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client whose requests reach ``app`` from the address ``peer``."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


def bearer(settings: Settings, role: str, *, ttl_s: int | None = None) -> dict[str, str]:
    """A token signed with the configured key (``ttl_s``: a codec with another lifetime)."""
    codec = JwtCodec.from_settings(settings)
    if ttl_s is not None:
        codec.ttl_s = ttl_s
    token, _ = codec.issue(
        sub=f"user:{role}", role=role, scopes=scopes_for(role), sid=uuid.uuid4().hex
    )
    return {"Authorization": f"Bearer {token}"}


async def audit_entries(settings: Settings) -> list[dict[str, str]]:
    """Every entry of the namespace's audit stream."""
    redis = redis_client(settings)
    try:
        return [fields for _, fields in await redis.xrange(f"{settings.redis_key_prefix}audit")]
    finally:
        await redis.aclose()


def events_in(entries: list[dict[str, str]], action: str) -> int:
    """How many events of ``action`` the entries stand for (a summary counts its ``count``)."""
    return sum(
        int(e["count"]) if e["outcome"] == "suppressed" else 1
        for e in entries
        if e["action"] == action
    )


# --- history cursors ---------------------------------------------------------------------


def prediction(i: int, symbol: str, model: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "ts": T0 + i * 60_000, "horizon": 1, "prob_up": 0.5,
        "expected_return": 0.001, "model_name": model, "model_version": "1",
        "role": "CHAMPION", "feature_set_version": "v1", "scoring_latency_ms": 1.0,
        "correlation_id": f"c{i}-{model}", "produced_at": T0 + i * 60_000 + 5,
    }  # fmt: skip


@pytest.fixture
def chdb_history(settings: Settings) -> Any:
    """Predictions of AAPL and MSFT in chDB, served by a read endpoint (like the sink's)."""
    prepare_tables(connect(settings), settings)
    rows = [
        PREDICTIONS.to_row(prediction(i, symbol, model))
        for i in range(10)
        for symbol in ("AAPL", "MSFT")
        for model in ("lgbm", "xgb")
    ]
    ClickHouseSink(settings, PREDICTIONS, ClickHouseConnector(settings)).write(SinkBatch(rows=rows))
    endpoint = ReadEndpoint(settings).start()
    yield endpoint
    endpoint.close()


def probe_cursor() -> str:
    """The probe's cursor: base64url of ``[1e30, 'x', '1', 1]``."""
    raw = json.dumps([1e30, "x", "1", 1]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_probe_cursor_is_400_and_history_stays_available(
    settings: Settings, chdb_history: Any
) -> None:
    async with running(settings, history_url=chdb_history.url) as app, http(app) as client:
        attacker, user = bearer(settings, "trader"), bearer(settings, "trader")
        params = {"start": T0, "end": T0 + 10 * 60_000}
        for _ in range(settings.circuit_failures):
            bad = await client.get(
                HISTORY.format(symbol="AAPL"),
                params={**params, "cursor": probe_cursor()},
                headers=attacker,
            )
            assert bad.status_code == 400, bad.text
            assert bad.json()["error"] == "invalid_cursor"
        assert app.state.runtime.history.breaker.state == "closed"
        legit = await client.get(HISTORY.format(symbol="AAPL"), params=params, headers=user)
        assert legit.status_code == 200, legit.text
        assert len(legit.json()["rows"]) == 20


async def test_a_cursor_replayed_on_another_symbol_is_400(
    settings: Settings, chdb_history: Any
) -> None:
    async with running(settings, history_url=chdb_history.url) as app, http(app) as client:
        headers = bearer(settings, "trader")
        params: dict[str, Any] = {"start": T0, "end": T0 + 10 * 60_000, "limit": 5}
        first = await client.get(HISTORY.format(symbol="AAPL"), params=params, headers=headers)
        cursor = first.json()["next_cursor"]
        assert first.status_code == 200
        assert cursor
        params["cursor"] = cursor
        second = await client.get(HISTORY.format(symbol="AAPL"), params=params, headers=headers)
        assert second.status_code == 200, second.text
        assert second.json()["rows"][0]["ts_ms"] > first.json()["rows"][-1]["ts_ms"] - 1
        replayed = await client.get(HISTORY.format(symbol="MSFT"), params=params, headers=headers)
        assert replayed.status_code == 400, replayed.text
        assert replayed.json()["error"] == "invalid_cursor"
        assert "not issued for this query" in replayed.json()["error_description"]
        bigger = await client.get(
            HISTORY.format(symbol="AAPL"), params={**params, "limit": 500}, headers=headers
        )
        assert bigger.status_code == 400  # page size is part of the query too


# --- unauthenticated and failed requests -----------------------------------------------------


async def test_unauthenticated_flood_is_limited_and_its_audit_bounded(settings: Settings) -> None:
    limit, sample = 50, 5
    config = configured(settings, rate_limit_unauthenticated=limit, audit_sample_per_address=sample)
    async with running(config) as app, http(app, "198.51.100.66") as client:
        statuses = [
            (await client.get("/v1/predictions/AAPL/latest")).status_code for _ in range(1000)
        ]
        refused = await client.get("/v1/auth/me")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        # a caller with a token from the same address is not affected
        me = await client.get("/v1/auth/me", headers=bearer(config, "viewer"))
        assert me.status_code == 200
    assert limit <= statuses.count(401) <= limit + 1  # +1: the sliding window's rounding
    assert statuses.count(401) + statuses.count(429) == 1000
    entries = await audit_entries(config)
    floods = [e for e in entries if e["action"] in ("auth.invalid_token", "auth.rate_limited")]
    assert len(floods) <= 2 * (sample + 1)  # was 1,000
    assert all(e["client"] == "198.51.100.66" for e in floods)
    summaries = [e for e in floods if e["outcome"] == "suppressed"]
    assert summaries
    assert all(int(e["count"]) > 0 for e in summaries)
    assert events_in(floods, "auth.invalid_token") == statuses.count(401)
    assert events_in(floods, "auth.rate_limited") == statuses.count(429) + 1


async def test_failed_token_flood_is_429_after_the_budget_and_not_audited(
    settings: Settings,
) -> None:
    budget, sample = 20, 5
    config = configured(settings, rate_limit_failed_auth=budget, audit_sample_per_address=sample)
    async with running(config) as app, http(app, "198.51.100.77") as client:
        forged = {"Authorization": "Bearer not.a.token"}
        statuses = [
            (await client.get("/v1/auth/me", headers=forged)).status_code for _ in range(100)
        ]
        ok = await client.get("/v1/auth/me", headers=bearer(config, "viewer"))
        assert ok.status_code == 200
    assert budget <= statuses.count(401) <= budget + 1
    assert statuses.count(429) == 100 - statuses.count(401)
    entries = [e for e in await audit_entries(config) if e["action"] == "auth.invalid_token"]
    assert len(entries) <= sample + 1
    assert events_in(entries, "auth.invalid_token") == statuses.count(401)


# --- revocation and token lifetime -------------------------------------------------------------


async def test_revoked_key_token_is_refused_past_its_expiry(settings: Settings) -> None:
    ttl = 3  # below the setting's minimum on purpose (model_copy does not validate)
    config = configured(settings, access_token_ttl_s=ttl)
    async with running(config) as app, http(app) as client:
        admin = bearer(config, "admin")
        created = await client.post(
            "/v1/keys", json={"name": "bot", "role": "viewer"}, headers=admin
        )
        assert created.status_code in (200, 201), created.text
        key = created.json()
        grant = await client.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "client_secret": key["api_key"]},
        )
        assert grant.status_code == 200, grant.text
        token = {"Authorization": f"Bearer {grant.json()['access_token']}"}
        me = await client.get("/v1/auth/me", headers=token)
        assert me.status_code == 200
        exp = me.json()["expires_at"]
        revoked = await client.delete(f"/v1/keys/{key['key_id']}", headers=admin)
        assert revoked.status_code == 200, revoked.text
        assert (await client.get("/v1/auth/me", headers=token)).status_code == 401
        await asyncio.sleep(max(0.0, exp + 1.6 - time.time()))  # iat + TTL + 1.6 s
        late = await client.get("/v1/auth/me", headers=token)
        assert late.status_code == 401, late.text
        assert late.json()["error_description"] == "token revoked"


async def test_token_lifetime_over_the_max_is_401(settings: Settings) -> None:
    async with running(settings) as app, http(app) as client:
        normal = await client.get("/v1/auth/me", headers=bearer(settings, "viewer"))
        assert normal.status_code == 200
        long_lived = bearer(settings, "viewer", ttl_s=settings.access_token_ttl_s + 3600)
        response = await client.get("/v1/auth/me", headers=long_lived)
        assert response.status_code == 401
        assert response.json()["error_description"] == "token lifetime too long"
        slack = bearer(settings, "viewer", ttl_s=settings.access_token_ttl_s + 1)
        assert (await client.get("/v1/auth/me", headers=slack)).status_code == 200


# --- login throttling and the client address ---------------------------------------------------


async def test_login_is_throttled_per_account(settings: Settings) -> None:
    config = configured(settings, rate_limit_login_account=3)
    await create_user(config, "alice", PASSWORD, "viewer")
    await create_user(config, "bob", PASSWORD, "viewer")
    async with running(config) as app:

        async def login(peer: str, user: str, password: str) -> httpx.Response:
            async with http(app, peer) as client:
                form = {"grant_type": "password", "username": user, "password": password}
                return await client.post("/v1/auth/token", data=form)

        for i in range(3):  # three guesses, each from another address
            assert (await login(f"192.0.2.{i}", "alice", "wrong-password-1")).status_code == 400
        throttled = await login("192.0.2.50", "alice", PASSWORD)
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        assert (await login("192.0.2.0", "bob", PASSWORD)).status_code == 200


async def test_forwarded_for_is_honoured_only_from_trusted_proxies(settings: Settings) -> None:
    config = configured(settings, rate_limit_auth=2, trusted_proxies=["10.0.0.0/8"])
    refresh = {"grant_type": "refresh_token", "refresh_token": "rt.unknown"}
    async with running(config) as app:
        async with http(app, "10.1.2.3") as proxy:  # a trusted proxy: its header is the client

            async def via_proxy(forwarded: str) -> int:
                headers = {"X-Forwarded-For": forwarded}
                return (
                    await proxy.post("/v1/auth/token", data=refresh, headers=headers)
                ).status_code

            assert [await via_proxy("192.0.2.10") for _ in range(3)] == [400, 400, 429]
            # another client behind the proxy has its own bucket; what it wrote left of the
            # proxy's entry (a spoofed address) is ignored
            assert await via_proxy("192.0.2.10, 192.0.2.11") == 400
            assert await via_proxy("192.0.2.10, 192.0.2.11") == 400
            assert await via_proxy("192.0.2.12, 10.9.9.9") == 400  # trusted hops skipped
            bad = await proxy.get(
                "/v1/auth/me",
                headers={"Authorization": "Bearer x.y.z", "X-Forwarded-For": "192.0.2.30"},
            )
            assert bad.status_code == 401
        async with http(app, "203.0.113.5") as direct:  # not a proxy: the header is ignored

            async def spoofed(forwarded: str) -> int:
                headers = {"X-Forwarded-For": forwarded}
                return (
                    await direct.post("/v1/auth/token", data=refresh, headers=headers)
                ).status_code

            assert [await spoofed(f"192.0.2.{20 + i}") for i in range(3)] == [400, 400, 429]
            bad = await direct.get(
                "/v1/auth/me",
                headers={"Authorization": "Bearer x.y.z", "X-Forwarded-For": "192.0.2.31"},
            )
            assert bad.status_code == 401
    clients = {
        e["client"] for e in await audit_entries(config) if e["action"] == "auth.invalid_token"
    }
    assert clients == {"192.0.2.30", "203.0.113.5"}


# --- a real uvicorn: bodies, slow clients, header size, concurrency ----------------------------

QUICK = RequestLimits(header_timeout_s=1.0, body_timeout_s=2.0, max_header_bytes=8192)


class QuickProtocol(GuardedHttpToolsProtocol):
    """The protocol ``tickcast serve`` uses, with short time-outs for the test."""

    limits = QUICK


@asynccontextmanager
async def served(app: Any, **options: Any) -> AsyncIterator[int]:
    """``app`` (lifespan already running) on a real uvicorn server; yields its port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=QuickProtocol, lifespan="off",
        log_level="warning", timeout_keep_alive=5, **options,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``seconds``)."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_oversized_chunked_body_is_413(settings: Settings) -> None:
    async def chunks(total: int) -> AsyncIterator[bytes]:
        sent = 0
        while sent < total:
            yield b"a" * 65_536
            sent += 65_536

    async with (
        running(settings) as app,
        served(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        chunked = await client.post(
            "/v1/auth/token",
            content=chunks(1_200_000),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 413, chunked.text
        assert chunked.json()["error"] == "body_too_large"
        declared = await client.post("/v1/auth/token", content=b"a" * 1_200_000)
        assert declared.status_code == 413
        small = await client.post(
            "/v1/auth/token",
            content=chunks(1000),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert small.status_code in (400, 422)  # not a grant, but read and answered


async def test_slow_headers_get_408_and_the_connection_closed(settings: Settings) -> None:
    async with running(settings) as app, served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
        await writer.drain()

        async def trickle() -> None:  # one header byte at a time, as slowloris does
            for _ in range(50):
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.1)

        feeder = asyncio.create_task(trickle())
        try:
            answer = await closed_within(reader, QUICK.header_timeout_s + 2)
        finally:
            feeder.cancel()
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < QUICK.header_timeout_s + 1.5


async def test_idle_and_slow_body_connections_are_closed(settings: Settings) -> None:
    async with running(settings) as app, served(app) as port:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        body_reader, body_writer = await asyncio.open_connection("127.0.0.1", port)
        body_writer.write(
            b"POST /v1/auth/token HTTP/1.1\r\nHost: api\r\nContent-Length: 100\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\ngrant_type="
        )
        await body_writer.drain()
        try:
            assert (await closed_within(idle_reader, QUICK.header_timeout_s + 2)).startswith(
                b"HTTP/1.1 408"
            )
            await closed_within(body_reader, QUICK.body_timeout_s + 2)  # closed, body unsent
        finally:
            idle_writer.close()
            body_writer.close()
        # the server still answers promptly, on a keep-alive connection too
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):
                assert (await client.get("/healthz")).status_code == 200


async def test_oversized_headers_get_431(settings: Settings) -> None:
    async with running(settings) as app, served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n")
        await writer.drain()
        try:
            answer = await closed_within(reader, 3)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 431")


async def test_connections_beyond_the_concurrency_limit_get_503(settings: Settings) -> None:
    async with running(settings) as app, served(app, limit_concurrency=3) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/healthz")).status_code == 503
        finally:
            for _, writer in held:
                writer.close()
