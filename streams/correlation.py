"""Correlation ids on Kafka records: one header name, written and read the same way everywhere.

Every record's Avro value already carries its ``correlation_id`` field (tick → features →
prediction → ClickHouse row → HTTP answer). The Kafka header repeats it so that tools which do
not decode Avro (kcat, a dead-letter browser, broker-side tracing) can follow a tick too, and so
that a consumer can bind the id to its log lines before it decodes anything.

>>> kafka_headers("3f2a")
[('correlation_id', b'3f2a')]
>>> from_headers([("run_id", b"r1"), ("correlation_id", b"3f2a")])
'3f2a'
>>> kafka_headers(None) is None, from_headers(None) is None
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Kafka header carrying a record's correlation id (UTF-8 bytes).
HEADER = "correlation_id"
#: HTTP header carrying it on requests and answers (serving/middleware.py).
HTTP_HEADER = "X-Correlation-ID"

HeaderList = list[tuple[str, bytes]]
HeaderValue = str | bytes | None


def kafka_headers(correlation_id: str | None, **extra: str) -> HeaderList | None:
    """Headers for one produced record (``None`` when there is nothing to send).

    ``extra`` adds other string headers (e.g. ``run_id=...``) in the same list.
    """
    headers: HeaderList = []
    if correlation_id:
        headers.append((HEADER, correlation_id.encode("utf-8")))
    headers.extend((key, value.encode("utf-8")) for key, value in extra.items() if value)
    return headers or None


def from_headers(
    headers: Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None,
) -> str | None:
    """The correlation id in a record's headers (confluent-kafka list, aiokafka/Faust mapping)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == HEADER and value:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def correlation_of(record: Mapping[str, Any], headers: Any = None) -> str | None:
    """A record's correlation id: its header first, else its ``correlation_id`` field."""
    found = from_headers(headers)
    if found:
        return found
    value = record.get("correlation_id")
    return str(value) if value else None
