"""The circuit breaker: opens after failures, fails fast while open, probes once, closes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving.circuit import CircuitBreaker, DependencyRefused, DependencyUnavailable
from serving.history import HistoryQueryError
from sinks.history import InvalidCursor
from tickcast.errors import DependencyError


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


# --- what counts: only outages (connection failures, time-outs) open a circuit -------------


async def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        OSError("network unreachable"),
        RedisConnectionError("reset"),
        RedisTimeoutError("timed out"),
        DependencyError("clickhouse", "connection refused"),
    ],
)
async def test_outages_count(exc: BaseException) -> None:
    cb = breaker([0.0])
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            await cb.call(_raise, exc)
    assert cb.state == "open"


@pytest.mark.parametrize(
    "exc",
    [DependencyRefused("clickhouse", "memory limit exceeded"), ResponseError("OOM command")],
)
async def test_a_dependency_that_answered_is_503_but_never_opens(exc: BaseException) -> None:
    now, dep = [0.0], Flaky()
    dep.up = True
    cb = breaker(now)
    for _ in range(20):
        with pytest.raises(DependencyUnavailable):
            await cb.call(_raise, exc)
    assert cb.state == "closed"
    assert await cb.call(dep) == "pong"


@pytest.mark.parametrize(
    "exc", [InvalidCursor("ts_ms out of range"), HistoryQueryError(43), ValueError("input")]
)
async def test_input_errors_propagate_and_never_open(exc: Exception) -> None:
    now, dep = [0.0], Flaky()
    dep.up = True
    cb = breaker(now)
    for _ in range(20):
        with pytest.raises(type(exc)):
            await cb.call(_raise, exc)
    assert cb.state == "closed"
    assert await cb.call(dep) == "pong"


async def test_input_errors_do_not_reset_the_outage_count() -> None:
    cb = breaker([0.0])
    for exc in (ConnectionError("a"), ValueError("x"), ConnectionError("b"), ValueError("y")):
        with contextlib.suppress(DependencyUnavailable, ValueError):
            await cb.call(_raise, exc)
    assert cb.state == "closed"
    with pytest.raises(DependencyUnavailable):
        await cb.call(_raise, ConnectionError("c"))
    assert cb.state == "open"  # three outages, whatever came between


async def test_a_probe_failing_on_input_leaves_the_circuit_half_open() -> None:
    now, dep = [0.0], Flaky()
    cb = breaker(now)
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            await cb.call(dep)
    now[0] = 5.0
    with pytest.raises(InvalidCursor):
        await cb.call(_raise, InvalidCursor("bad"))  # an attacker's request as the probe...
    assert cb.state == "half_open"  # ...neither reopens nor closes the circuit
    dep.up = True
    assert await cb.call(dep) == "pong"
    assert cb.state == "closed"
