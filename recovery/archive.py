"""Record files of a backup: Avro object container files (fastavro), one schema per kind.

Avro containers carry their schema and a sync marker per block, so a truncated or altered
file fails to read instead of restoring half of what it held (the manifest's checksums catch
it first).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fastavro

from recovery.errors import BackupError

KAFKA_RECORD = fastavro.parse_schema(
    {
        "type": "record",
        "name": "KafkaRecord",
        "namespace": "tickcast.backup",
        "fields": [
            {"name": "partition", "type": "int"},
            {"name": "offset", "type": "long"},
            {"name": "timestamp", "type": "long"},
            {"name": "key", "type": ["null", "bytes"]},
            {"name": "value", "type": ["null", "bytes"]},
            {
                "name": "headers",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Header",
                        "fields": [
                            {"name": "name", "type": "string"},
                            {"name": "value", "type": ["null", "bytes"]},
                        ],
                    },
                },
            },
        ],
    }
)

REDIS_KEY = fastavro.parse_schema(
    {
        "type": "record",
        "name": "RedisKey",
        "namespace": "tickcast.backup",
        "fields": [
            {"name": "key", "type": "bytes"},
            {"name": "expire_at_ms", "type": "long", "doc": "unix ms; 0 = no expiry"},
            {"name": "dump", "type": "bytes", "doc": "the value as Redis DUMP serialises it"},
        ],
    }
)


def write_records(path: Path, schema: Any, records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` to a new container file; returns how many."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        fastavro.writer(handle, schema, counted(), codec="deflate")
    return count


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a container file; BackupError when it cannot be read whole."""
    try:
        with path.open("rb") as handle:
            return [record for record in fastavro.reader(handle) if isinstance(record, dict)]
    except (OSError, ValueError, EOFError, StopIteration) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
