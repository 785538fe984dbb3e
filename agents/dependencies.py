"""Riding dependency outages: retry with capped exponential backoff and jitter.

The worker's outputs go to two dependencies it cannot do without: Kafka (outputs, state
snapshots, offsets) and Redis (the serving view). When one fails, the work in hand is
retried — never skipped — with a capped, jittered exponential backoff (tenacity), while the
runner pauses consumption through :attr:`DependencyGuard.sleep` (the direct runner pauses its
partitions and keeps polling its consumer, so it stays in its group; the Faust agent simply
stops pulling from its stream and Faust's flow control pauses the fetch). Memory stays
bounded: nothing new is consumed while a dependency is down.

``tickcast_dependency_up{component}`` goes to 0 on the first failure and back to 1 on the
first success; ``tickcast_degraded`` is 1 while any dependency of the process is down; a
``dependency_down`` / ``dependency_up`` log line carries the outage's length.

Two ways out of a retry besides success: the runner lost the partitions of the work in
hand (:class:`BatchAbandoned`: the next owner replays it from the last commit), or the
process is stopping (:class:`StopRequested`: it exits without committing that work).
Anything not listed in :data:`RETRYABLE` is not retried: it ends the process with its
message, and nothing it touched is committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity import wait_random_exponential as jittered

from tickcast.errors import DependencyError, TickcastError
from tickcast.metrics import Metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Failures worth waiting out: the dependency is unreachable, slow, or restarting.
RETRYABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionError,
    TimeoutError,
    DependencyError,
)


class BatchAbandoned(TickcastError):
    """The partitions of the work in hand were revoked while it waited for a dependency."""


class StopRequested(TickcastError):
    """The process was asked to stop while it waited for a dependency."""


class DependencyGuard:
    """Run dependency calls until they succeed; say which dependency is down meanwhile."""

    def __init__(
        self,
        metrics: Metrics,
        max_backoff_s: float = 5.0,
        first_backoff_s: float = 0.05,
    ) -> None:
        self.metrics = metrics
        self.max_backoff_s = max_backoff_s
        self.first_backoff_s = first_backoff_s
        self.down: dict[str, float] = {}
        """Dependencies that are down now → when their outage began (monotonic)."""
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How to wait between attempts (a runner replaces it to pause its consumer)."""
        self.abandoned = False
        """Set by a runner whose partitions were revoked during a wait."""
        self.stopping: Callable[[], bool] = lambda: False
        """True when the process should stop instead of waiting longer."""
        self.outages = 0

    @property
    def degraded(self) -> bool:
        """True while any dependency of this process is down."""
        return bool(self.down)

    async def call(self, component: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``await attempt()`` until it succeeds, backing off between failures."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            wait=jittered(multiplier=self.first_backoff_s, max=self.max_backoff_s),
            sleep=self._sleep,
            before_sleep=lambda state: self._failed(component, state),
            reraise=True,
        )
        async for trial in retrying:
            with trial:
                self._check_abandoned()  # a stop does not cut short a first attempt
                result = await attempt()
        self._succeeded(component)
        return result

    def _check_abandoned(self) -> None:
        if self.abandoned:
            raise BatchAbandoned("partitions revoked while waiting for a dependency")

    async def _sleep(self, seconds: float) -> None:
        await self.sleep(seconds)
        self._check_abandoned()
        if self.stopping():
            raise StopRequested("stopping while waiting for a dependency")

    def _failed(self, component: str, state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if component not in self.down:
            self.down[component] = time.monotonic()
            self.outages += 1
            log.warning("dependency_down", component=component, error=str(error)[:300])
        self.metrics.set_dependency(component, False)
        self.metrics.degraded.set(1)
        if component == "redis":
            self.metrics.redis_errors.labels(op="write_batch").inc()

    def _succeeded(self, component: str) -> None:
        began = self.down.pop(component, None)
        if began is not None:
            log.warning(
                "dependency_up", component=component, outage_s=round(time.monotonic() - began, 2)
            )
        self.metrics.set_dependency(component, True)
        self.metrics.degraded.set(1 if self.down else 0)
