"""Plain values that cross the boundary between Kafka adapters and the pure engines."""

from __future__ import annotations

from typing import NamedTuple


class RawRecord(NamedTuple):
    """One consumed Kafka record, as any runner (Faust or a plain consumer) sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0
