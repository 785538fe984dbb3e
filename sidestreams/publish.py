"""Publish side records to their topics: macro by series, news once per symbol.

News is keyed by symbol with the same producer (and so the same partitioner) as ``ticks``,
which puts each item on the partition of its symbol's ticks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sidestreams.sources import kafka_records
from streams.codec import get_codec
from streams.producer import BatchProducer
from tickcast.config import Settings

__all__ = ["publish_side"]

_STEMS = {"macro": "macro_observation", "news": "news_item"}


def publish_side(settings: Settings, records: Iterable[Any]) -> dict[str, int]:
    """Produce ``records`` (MacroObservation / NewsItem) and flush; records sent per topic."""
    producer = BatchProducer(settings)
    sent = {"macro": 0, "news": 0}
    for record in records:
        for topic, key, value in kafka_records(record):
            payload = get_codec(_STEMS[topic]).encode(value)
            producer.produce(settings.topic(topic), key.encode(), payload)
            sent[topic] += 1
    producer.flush()
    return sent
