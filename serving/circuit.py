"""A small circuit breaker with a call timeout, put around each dependency of the API.

    closed ──(``failure_threshold`` consecutive failures)──► open
    open ──(``reset_after_s`` elapsed)──► half-open: exactly one probe call goes through
    half-open ──probe succeeds──► closed;  ──probe fails──► open again

While open (and while a probe is in flight) calls fail at once with
:class:`DependencyUnavailable`, so a dead Redis is not hammered and callers get an answer in
bounded time; ``retry_after_s`` tells them when the next probe is due.

Only an outage counts towards opening: a connection failure or a time-out (:data:`OUTAGES`).
A dependency that answered with an error (:class:`DependencyRefused`, a Redis error reply) is
up: that call is a :class:`DependencyUnavailable`, but it is not counted. Anything else (a bad
cursor, a bug) propagates unchanged and is not counted either, so no input a caller chooses
can open a circuit for everyone.

The breaker is not shared across processes: each API replica protects itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tickcast.errors import DependencyError

T = TypeVar("T")
State = Literal["closed", "open", "half_open"]
Outcome = Literal["outage", "refused", "other"]


class DependencyRefused(DependencyError):
    """The dependency is up but answered this one request with an error (a server-side
    failure, not the caller's input): a 503 for this call, never counted as an outage."""


#: Outages: the only failures that count towards opening a circuit (connection failures and
#: time-outs). Adapters raise a plain :class:`~tickcast.errors.DependencyError` for those.
OUTAGES: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    RedisConnectionError,
    RedisTimeoutError,
    DependencyError,
)
DEFAULT_FAILURES = OUTAGES


def classify(exc: BaseException, outages: tuple[type[BaseException], ...] = OUTAGES) -> Outcome:
    """``outage`` (counted), ``refused`` (503, not counted) or ``other`` (propagates).

    >>> classify(ConnectionRefusedError()), classify(RedisTimeoutError())
    ('outage', 'outage')
    >>> from redis.exceptions import ResponseError
    >>> classify(DependencyRefused("clickhouse", "x")), classify(ResponseError("OOM"))
    ('refused', 'refused')
    >>> classify(ValueError("bad cursor"))
    'other'
    """
    if isinstance(exc, DependencyRefused):
        return "refused"
    if isinstance(exc, outages):
        return "outage"
    if isinstance(exc, RedisError):  # an error reply: Redis answered
        return "refused"
    return "other"


log = structlog.get_logger("serving.circuit")


class DependencyUnavailable(DependencyError):
    """A dependency failed, timed out, or its circuit is open."""

    def __init__(self, component: str, message: str, retry_after_s: float) -> None:
        super().__init__(component, message)
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a per-call timeout (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 5.0,
        timeout_s: float | None = None,
        failures: tuple[type[BaseException], ...] = DEFAULT_FAILURES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_after_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_after_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.timeout_s = timeout_s
        self._failures = failures
        self._clock = clock
        self._state: State = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> State:
        """The current state; an open circuit whose reset time has passed reads ``half_open``."""
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_after_s:
            return "half_open"
        return self._state

    def retry_after(self) -> float:
        """Seconds until the next probe may go through (``reset_after_s`` when unknown)."""
        if self._state == "open":
            return max(0.0, self.reset_after_s - (self._clock() - self._opened_at)) or 1.0
        return self.reset_after_s

    def _admit(self) -> bool:
        """Whether a call may go through now; returns True when it is the half-open probe."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probe_in_flight:
            self._state = "half_open"
            self._probe_in_flight = True
            return True
        raise DependencyUnavailable(self.name, "circuit open", self.retry_after())

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        if self._state != "closed":
            log.info("circuit_closed", dependency=self.name)
        self._state = "closed"
        self._consecutive = 0

    def record_failure(self) -> None:
        """A call failed: count it, and open the circuit at the threshold or on a failed probe."""
        self._consecutive += 1
        if self._state == "half_open" or self._consecutive >= self.failure_threshold:
            if self._state != "open":
                log.warning("circuit_opened", dependency=self.name, failures=self._consecutive)
            self._state = "open"
            self._opened_at = self._clock()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker, within ``timeout_s``.

        Raises :class:`DependencyUnavailable` when the circuit is open, the call times out or
        fails (:func:`classify`; only outages are counted). Other exceptions propagate and
        leave the circuit as it was (a probe that raised one lets the next call probe).
        """
        probe = self._admit()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await fn(*args, **kwargs)
        except Exception as exc:
            outcome = classify(exc, self._failures)
            if outcome == "other":
                raise
            if outcome == "outage":
                self.record_failure()
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise DependencyUnavailable(self.name, reason, self.retry_after()) from exc
        except BaseException:
            if probe:
                self._state = "open"
                self._opened_at = self._clock()
            raise
        finally:
            if probe:
                self._probe_in_flight = False
        self.record_success()
        return result
