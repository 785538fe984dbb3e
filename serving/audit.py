"""Append-only audit trail of administrative actions and authentication failures.

Each event goes to the structlog logger ``tickcast.audit`` and to the Redis stream ``audit``
(``XADD`` only; the stream is capped, approximately, at ``maxlen`` entries for retention).
Events carry the correlation id of the request. Field values are plain identifiers — user
names, key ids, scopes, reasons — never a password, token or key: fields whose name says
secret are refused here, whatever a caller passes. If Redis is down the event is still logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
    ) -> None:
        self._redis = redis
        self.stream = stream
        self._maxlen = maxlen
        self._breaker = breaker or CircuitBreaker("audit", timeout_s=1.0)
        self._clock = clock

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
