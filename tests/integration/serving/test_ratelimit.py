"""Sliding-window rate limits on a real Redis, against a plain-Python reference of the algorithm."""

from __future__ import annotations

import random
import uuid

import pytest
from redis.asyncio import Redis

from serving.ratelimit import Limit, RateLimiter
from tests.support.serving_app import Api, bearer, make_settings, running_api

pytestmark = pytest.mark.integration


class Reference:
    """Independent model: two fixed-window counters per limit, the previous one weighted."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    def hit(self, limits: list[Limit], now_ms: int) -> bool:
        estimates = []
        for limit in limits:
            window = int(limit.window_s * 1000)
            index, elapsed = divmod(now_ms, window)
            prev = self.counts.get((limit.name, index - 1), 0)
            curr = self.counts.get((limit.name, index), 0)
            estimates.append(prev * (window - elapsed) / window + curr + 1 <= limit.limit)
        if not all(estimates):
            return False
        for limit in limits:
            key = (limit.name, now_ms // int(limit.window_s * 1000))
            self.counts[key] = self.counts.get(key, 0) + 1
        return True


def limiter(redis: Redis, now: list[float]) -> RateLimiter:
    return RateLimiter(redis, prefix=f"t{uuid.uuid4().hex[:8]}:", clock=lambda: now[0])


async def test_allows_up_to_the_limit_then_refuses(redis: Redis) -> None:
    now = [1_000_000.0]  # a window boundary for 10 s windows
    rl = limiter(redis, now)
    limits = [Limit("alice", 3, 10)]
    decisions = [await rl.hit(limits) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after_s > 0


async def test_retry_after_is_exactly_when_a_request_fits_again(redis: Redis) -> None:
    rng = random.Random(7)
    for _ in range(5):
        now = [1_000_000.0 + rng.uniform(0, 30)]
        rl = limiter(redis, now)
        limits = [Limit("bob", rng.randint(1, 6), rng.choice([1, 5, 10]))]
        while (decision := await rl.hit(limits)).allowed:
            now[0] += rng.uniform(0, 0.5)
        start = now[0]
        now[0] = start + decision.retry_after_s - 0.01
        assert not (await rl.hit(limits)).allowed
        now[0] = start + decision.retry_after_s
        assert (await rl.hit(limits)).allowed


async def test_matches_reference_on_a_random_stream(redis: Redis) -> None:
    rng = random.Random(11)
    now = [2_000_000.0]
    rl = limiter(redis, now)
    reference = Reference()
    subjects = ["a", "b", "c"]
    for _ in range(400):
        now[0] += rng.expovariate(20)
        who = rng.choice(subjects)
        limits = [Limit(f"sub:{who}", 5, 2), Limit("global", 12, 2)]
        now_ms = int(now[0] * 1000)
        now[0] = now_ms / 1000  # both sides see the same millisecond
        assert (await rl.hit(limits)).allowed == reference.hit(limits, now_ms)


async def test_global_limit_spans_subjects_and_refusals_are_not_counted(redis: Redis) -> None:
    now = [3_000_000.0]
    rl = limiter(redis, now)

    def limits(who: str) -> list[Limit]:
        return [Limit(f"sub:{who}", 2, 60), Limit("global", 3, 60)]

    assert (await rl.hit(limits("a"))).allowed
    assert (await rl.hit(limits("a"))).allowed
    assert not (await rl.hit(limits("a"))).allowed  # a's own limit; must not use global quota
    assert (await rl.hit(limits("b"))).allowed  # global 3 of 3
    refused = await rl.hit(limits("c"))
    assert not refused.allowed  # global exhausted for everyone
    assert refused.retry_after_s > 0


async def test_http_429_with_retry_after(redis_url: str, redis: Redis, store: object) -> None:
    settings = make_settings(redis_url, rate_limit_per_subject=3)
    async for api in running_api(settings, redis, store, lambda: 0.0):  # type: ignore[arg-type]
        token = await api.token("viewer")
        statuses = [
            (await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token)))
            for _ in range(4)
        ]
        assert [r.status_code for r in statuses] == [404, 404, 404, 429]
        limited = statuses[-1]
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= settings.rate_limit_window_s * 2
        # another caller has its own quota
        other = await api.token("viewer")
        response = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(other))
        assert response.status_code == 404


async def test_token_endpoint_limited_per_client_address(
    redis_url: str, redis: Redis, store: object
) -> None:
    settings = make_settings(redis_url, rate_limit_auth=2)
    async for api in running_api(settings, redis, store, lambda: 0.0):  # type: ignore[arg-type]
        api_typed: Api = api
        codes = [
            (await api_typed.login("nobody", "wrong-password-123")).status_code for _ in range(3)
        ]
        assert codes == [400, 400, 429]
        response = await api_typed.login("nobody", "wrong-password-123")
        assert "Retry-After" in response.headers


async def test_batched_gate_matches_the_reference_and_skips_revoked(redis: Redis) -> None:
    """Concurrent gate() calls share one script call yet decide exactly as one by one."""
    import asyncio

    rng = random.Random(5)
    now = [3_000_000.0]
    rl = limiter(redis, now)
    reference = Reference()
    revoked = f"t{uuid.uuid4().hex[:8]}:revoked"
    await redis.set(revoked, "1")
    for _ in range(20):
        now[0] = int((now[0] + rng.uniform(0, 0.4)) * 1000) / 1000
        now_ms = int(now[0] * 1000)
        burst = []
        for _ in range(rng.randint(1, 12)):
            who = rng.choice("ab")
            is_revoked = rng.random() < 0.2
            limits = [Limit(f"sub:{who}", 4, 1), Limit("global", 9, 1)]
            burst.append((limits, [revoked] if is_revoked else ["absent-marker"], is_revoked))
        calls = [asyncio.ensure_future(rl.gate(limits, markers)) for limits, markers, _ in burst]
        decisions = await asyncio.gather(*calls)
        for (limits, _, is_revoked), decision in zip(burst, decisions, strict=True):
            if is_revoked:
                assert decision is None  # refused as revoked, and not counted
            else:
                assert decision is not None
                assert decision.allowed == reference.hit(limits, now_ms)
