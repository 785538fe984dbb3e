"""DependencyGuard: retried until success, never skipped; abandon and stop as the only exits."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from agents.dependencies import BatchAbandoned, DependencyGuard, StopRequested
from tickcast.metrics import Metrics


def _guard() -> tuple[DependencyGuard, list[float]]:
    guard = DependencyGuard(Metrics(process=False), max_backoff_s=0.01, first_backoff_s=0.001)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    guard.sleep = sleep
    return guard, waits


def test_retries_an_outage_until_it_ends_and_says_so_meanwhile() -> None:
    guard, waits = _guard()
    calls: list[int] = []
    seen_down: list[tuple[float | None, float | None]] = []

    async def flaky() -> str:
        calls.append(1)
        seen_down.append((guard.metrics.value("tickcast_dependency_up", component="redis"),
                          guard.metrics.value("tickcast_degraded")))  # fmt: skip
        if len(calls) < 4:
            raise redis.exceptions.ConnectionError("down")
        return "written"

    assert asyncio.run(guard.call("redis", flaky)) == "written"
    assert len(calls) == 4
    assert len(waits) == 3
    assert all(0 <= w <= 0.01 for w in waits)  # capped
    assert seen_down[1:] == [(0.0, 1.0)] * 3  # down and degraded while it failed
    assert guard.metrics.value("tickcast_dependency_up", component="redis") == 1.0
    assert guard.metrics.value("tickcast_degraded") == 0.0
    assert not guard.degraded
    assert guard.outages == 1


def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    guard, waits = _guard()

    async def broken() -> None:
        raise redis.exceptions.ResponseError("OOM command not allowed")

    with pytest.raises(redis.exceptions.ResponseError):
        asyncio.run(guard.call("redis", broken))
    assert waits == []


def test_a_revoke_during_the_wait_abandons_the_work() -> None:
    guard, _ = _guard()

    async def down() -> None:
        guard.abandoned = True  # the runner's revoke callback, during the outage
        raise ConnectionError("down")

    with pytest.raises(BatchAbandoned):
        asyncio.run(guard.call("kafka", down))


def test_a_stop_ends_the_wait_but_never_a_first_attempt() -> None:
    guard, _ = _guard()
    guard.stopping = lambda: True

    async def works() -> int:
        return 7

    assert asyncio.run(guard.call("kafka", works)) == 7  # a clean stop still checkpoints

    async def down() -> None:
        raise TimeoutError("slow")

    with pytest.raises(StopRequested):
        asyncio.run(guard.call("kafka", down))
