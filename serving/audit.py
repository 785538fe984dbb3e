"""Append-only audit trail of administrative actions and authentication failures.

Each event goes to the structlog logger ``tickcast.audit`` and to the Redis stream ``audit``
(``XADD`` only; the stream is capped, approximately, at ``maxlen`` entries for retention).
Events carry the correlation id of the request. Field values are plain identifiers — user
names, key ids, scopes, reasons — never a password, token or key: fields whose name says
secret are refused here, whatever a caller passes. If Redis is down the event is still logged.

Events an anonymous sender can trigger at will (authentication failures, rate-limit refusals)
go through :meth:`AuditLog.record_flood`: per action and client address, the first
``sample_per_key`` events of a window are written; the rest are only counted, and one entry
(outcome ``suppressed``, with ``count``) summarises them when the window ends. A flood from
one address thus writes a bounded number of entries and cannot push genuine records out of
the capped stream. The sampler is per process and holds at most ``max_keys`` windows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from serving.circuit import CircuitBreaker, DependencyUnavailable

_SECRET_WORDS = ("password", "secret", "token", "api_key", "authorization", "jwt", "credential")

FieldValue = str | int | float | bool | None

log = structlog.get_logger("tickcast.audit")


def sanitize(fields: dict[str, FieldValue]) -> dict[str, str]:
    """Stream-ready fields: ``None`` dropped, secret-named fields refused, values as text."""
    clean: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit field {key!r} looks like a secret; pass an identifier")
        clean[key] = str(value)
    return clean


FloodKey = tuple[str, str]
#: Where the events of new keys are counted once the sampler is full.
OVERFLOW = "*"


@dataclass(slots=True)
class _Window:
    start: float
    seen: int = 0
    suppressed: int = 0


class FloodSampler:
    """The first ``sample`` events per key and window pass; the rest are counted.

    >>> now = [0.0]
    >>> sampler = FloodSampler(sample=2, window_s=60, clock=lambda: now[0])
    >>> [sampler.admit(("a", "1")) for _ in range(5)], sampler.admit(("a", "2"))
    ([True, True, False, False, False], True)
    >>> now[0] = 61.0
    >>> sampler.ended()
    [(('a', '1'), 3, 0.0)]
    """

    def __init__(
        self,
        sample: int,
        window_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sample = sample
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._windows: dict[FloodKey, _Window] = {}
        self._pending: list[tuple[FloodKey, int, float]] = []
        self._next_scan = 0.0

    def admit(self, key: FloodKey) -> bool:
        """Whether this event is written (else it is counted in its window's summary)."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None and len(self._windows) >= self.max_keys:
            key = (key[0], OVERFLOW)
            window = self._windows.get(key)
        if window is None or now - window.start >= self.window_s:
            if window is not None and window.suppressed:
                self._pending.append((key, window.suppressed, window.start))
            window = self._windows[key] = _Window(now)
        window.seen += 1
        if window.seen <= self.sample:
            return True
        window.suppressed += 1
        return False

    def ended(self, *, everything: bool = False) -> list[tuple[FloodKey, int, float]]:
        """Pop the windows that ended (every one with ``everything``); returns the
        ``(key, suppressed count, window start)`` of those that suppressed events. Scans
        for ended windows at most once a second."""
        now = self._clock()
        out, self._pending = self._pending, []
        if not everything and now < self._next_scan:
            return out
        self._next_scan = now + 1.0
        done = [
            key
            for key, window in self._windows.items()
            if everything or now - window.start >= self.window_s
        ]
        for key in done:
            window = self._windows.pop(key)
            if window.suppressed:
                out.append((key, window.suppressed, window.start))
        return out


class AuditLog:
    """Writes audit events; ``record`` never raises because Redis is down."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str = "audit",
        maxlen: int = 1_000_000,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
        sample_per_key: int = 10,
        sample_window_s: float = 60.0,
    ) -> None:
        self._redis = redis
        self.stream = stream
        self._maxlen = maxlen
        self._breaker = breaker or CircuitBreaker("audit", timeout_s=1.0)
        self._clock = clock
        self.sampler = FloodSampler(sample_per_key, sample_window_s, clock=clock)

    async def record(
        self,
        action: str,
        outcome: str,
        *,
        subject: str | None = None,
        correlation_id: str | None = None,
        **fields: FieldValue,
    ) -> None:
        """Record ``action`` (e.g. ``auth.login``) with ``outcome`` (``ok``, ``denied``, ...)."""
        ctx = structlog.contextvars.get_contextvars()
        entry = sanitize(
            {
                "ts": round(self._clock(), 3),
                "action": action,
                "outcome": outcome,
                "subject": subject,
                "correlation_id": correlation_id or ctx.get("correlation_id"),
                **fields,
            }
        )
        log.info("audit", **entry)
        try:
            await self._breaker.call(
                self._redis.xadd, self.stream, entry, maxlen=self._maxlen, approximate=True
            )
        except DependencyUnavailable as exc:
            log.warning("audit_stream_unavailable", action=action, reason=str(exc))

    async def record_flood(
        self,
        action: str,
        outcome: str,
        *,
        client: str,
        subject: str | None = None,
        **fields: FieldValue,
    ) -> None:
        """:meth:`record` for events a sender can repeat at will, sampled per action and
        client address (see the module docstring)."""
        await self.flush()
        if self.sampler.admit((action, client)):
            await self.record(
                action, outcome, subject=subject, correlation_id=None, client=client, **fields
            )

    async def flush(self, *, everything: bool = False) -> None:
        """Write the summary of every sampling window that ended (``everything``: all)."""
        for (action, client), count, start in self.sampler.ended(everything=everything):
            await self.record(
                action,
                "suppressed",
                client=client,
                count=count,
                window_start=round(start, 3),
                window_s=self.sampler.window_s,
            )

    async def flush_periodically(self) -> None:
        """Flush ended windows once per window until cancelled (run in the lifespan)."""
        while True:
            await asyncio.sleep(self.sampler.window_s)
            await self.flush()
