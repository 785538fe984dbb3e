"""Plain values that cross the boundary between Kafka adapters and the pure engines."""

from __future__ import annotations

from typing import Any, NamedTuple


class RawRecord(NamedTuple):
    """One consumed Kafka record, as any runner (Faust or a plain consumer) sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0
    headers: Any = None
    """The record's Kafka headers, when the runner reads them (only while tracing: the
    ``traceparent`` of a traced tick); a list of pairs or a mapping."""
