"""The circuit breaker: opens after failures, fails fast while open, probes once, closes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from serving.circuit import CircuitBreaker, DependencyUnavailable


class Flaky:
    """A dependency whose health the test sets; counts the calls that reach it."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.hang = False

    async def __call__(self) -> str:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(10)
        if not self.up:
            raise ConnectionError("refused")
        return "pong"


def breaker(now: list[float], **kwargs: float) -> CircuitBreaker:
    return CircuitBreaker(
        "dep", failure_threshold=3, reset_after_s=5, clock=lambda: now[0], **kwargs
    )  # type: ignore[arg-type]


async def test_opens_after_threshold_then_fails_fast() -> None:
    now, dep = [0.0], Flaky()
    cb = breaker(now)
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            await cb.call(dep)
    assert cb.state == "open"
    assert dep.calls == 3
    for _ in range(10):
        with pytest.raises(DependencyUnavailable) as info:
            await cb.call(dep)
    assert dep.calls == 3  # not hammered while open
    now[0] = 2.0
    with pytest.raises(DependencyUnavailable) as info:
        await cb.call(dep)
    assert info.value.retry_after_s == pytest.approx(3.0)


async def test_half_open_probe_closes_on_success_and_reopens_on_failure() -> None:
    now, dep = [0.0], Flaky()
    cb = breaker(now)
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            await cb.call(dep)
    now[0] = 5.0
    assert cb.state == "half_open"
    with pytest.raises(DependencyUnavailable):
        await cb.call(dep)  # the probe fails...
    assert cb.state == "open"  # ...and the circuit opens again at once
    assert dep.calls == 4
    now[0] = 10.0
    dep.up = True
    assert await cb.call(dep) == "pong"
    assert cb.state == "closed"


async def test_only_one_probe_at_a_time() -> None:
    now, dep = [0.0], Flaky()
    cb = breaker(now)
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            await cb.call(dep)
    now[0] = 6.0
    dep.up = True
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return await dep()

    probe = asyncio.create_task(cb.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(DependencyUnavailable):
        await cb.call(dep)  # refused while the probe is in flight
    gate.set()
    assert await probe == "pong"
    assert cb.state == "closed"


async def test_timeout_counts_as_failure() -> None:
    now, dep = [0.0], Flaky()
    dep.hang = True
    cb = breaker(now, timeout_s=0.01)
    with pytest.raises(DependencyUnavailable, match="timed out"):
        await cb.call(dep)


async def test_successes_reset_the_failure_count() -> None:
    now, dep = [0.0], Flaky()
    cb = breaker(now)
    for up in (False, False, True, False, False, True):
        dep.up = up
        with contextlib.suppress(DependencyUnavailable):
            await cb.call(dep)
    assert cb.state == "closed"


async def test_bugs_are_not_swallowed() -> None:
    cb = breaker([0.0])

    async def bug() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await cb.call(bug)
    assert cb.state == "closed"
