"""``tickcast feed <vendor>``: a live vendor feed published to ``ticks``, reconnecting.

:func:`run_feed` connects a :class:`~streams.vendor.VendorFeed`, turns each event into a
``Tick`` (a trade carries the symbol's latest quote; a vendor bar is a BAR ending at its
end time), validates it with the worker's rules (per-symbol guards: bad prices, ranges,
duplicates, out-of-order, outliers, bad symbols) and produces it keyed by symbol. A refused
event goes to ``ticks.dlq`` with its reason (``source_topic`` = the feed's source, no
partition or offset) and is counted; it never stops the feed. When the connection drops or
cannot be opened, the feed reconnects after a capped, jittered exponential backoff
(``backoff_s`` doubling up to ``max_backoff_s``; reset by a successful connection).
Deliveries are flushed every ``flush_every`` ticks and when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from schemas.records import Tick
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.validation import SymbolGuard, ValidationRules, check_symbol, validate
from streams.vendor import AggregateBar, Quote, Trade, VendorEvent, VendorFeed
from tickcast.config import Settings
from tickcast.errors import DependencyError

__all__ = ["FeedStats", "event_tick", "run_feed"]

log = structlog.get_logger(__name__)


@dataclass
class FeedStats:
    """What a feed run did."""

    published: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    quotes: int = 0
    connections: int = 0
    failed_connects: int = 0
    parse_issues: int = 0


def event_tick(event: VendorEvent, source: str, quotes: dict[str, Quote]) -> Tick | None:
    """The Tick of a vendor event (``None`` for a quote: it is kept for the next trade)."""
    if isinstance(event, Quote):
        quotes[event.symbol] = event
        return None
    if isinstance(event, Trade):
        q = quotes.get(event.symbol)
        return Tick(
            symbol=event.symbol, ts=event.ts_ms, kind="TRADE", price=event.price,
            open=event.price, high=event.price, low=event.price, close=event.price,
            volume=event.volume, bid=q.bid if q else None, ask=q.ask if q else None,
            bid_size=q.bid_size if q else None, ask_size=q.ask_size if q else None,
            interval_ms=None, source=source, sequence=event.sequence, correlation_id=None,
        )  # fmt: skip
    assert isinstance(event, AggregateBar)
    return Tick(
        symbol=event.symbol, ts=event.end_ms, kind="BAR", price=event.close, open=event.open,
        high=event.high, low=event.low, close=event.close, volume=event.volume, bid=None,
        ask=None, bid_size=None, ask_size=None, interval_ms=event.end_ms - event.start_ms,
        source=source, sequence=None, correlation_id=None,
    )  # fmt: skip


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_feed(
    settings: Settings,
    make_feed: Callable[[], VendorFeed],
    source: str,
    stop: asyncio.Event,
    *,
    max_ticks: int | None = None,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    flush_every: int = 1000,
) -> FeedStats:
    """Publish the feed's ticks until ``stop`` (or ``max_ticks`` published)."""
    stats = FeedStats()
    producer = BatchProducer(settings)
    tick_codec, dlq_codec = get_codec("Tick"), get_codec("DeadLetter")
    topic, dlq = settings.topic("ticks"), settings.topic("ticks.dlq")
    rules = ValidationRules.from_settings(settings)
    guards: dict[str, SymbolGuard] = {}
    quotes: dict[str, Quote] = {}
    failures = 0

    def refuse(tick: Tick | None, reason: str, detail: str, raw: Any) -> None:
        stats.refused[reason] = stats.refused.get(reason, 0) + 1
        payload = json.dumps(raw, default=str).encode()
        producer.produce(dlq, tick["symbol"].encode()[:256] if tick else None, dlq_codec.encode({
            "source_topic": source, "partition": -1, "offset": -1, "key": None,
            "payload": payload, "reason": reason, "detail": detail[:1000],
            "failed_at": int(time.time() * 1000), "correlation_id": None, "processor": "feed",
            "event_ts": tick["ts"] if tick else None,
        }))  # fmt: skip

    while not stop.is_set():
        feed = make_feed()
        try:
            await feed.connect()
        except DependencyError as exc:
            stats.failed_connects += 1
            delay = min(max_backoff_s, backoff_s * 2**failures) * random.uniform(0.5, 1.0)
            failures += 1
            log.warning("feed connect failed", source=source, error=str(exc), retry_in_s=delay)
            await _sleep_or_stop(stop, delay)
            continue
        failures = 0
        stats.connections += 1
        log.info("feed connected", source=source, connection=stats.connections)
        try:
            async for event in feed:
                tick = event_tick(event, source, quotes)
                if tick is None:
                    stats.quotes += 1
                    continue
                symbol = tick["symbol"]
                problem = check_symbol(symbol, rules)
                if problem is None:
                    guard = guards.setdefault(symbol, SymbolGuard(window=rules.outlier_window))
                    problem = validate(tick, guard, rules, int(time.time() * 1000))
                if problem is not None:
                    refuse(tick, problem[0], problem[1], asdict(event))
                    continue
                producer.produce(topic, symbol.encode(), tick_codec.encode(dict(tick)))
                stats.published += 1
                if stats.published % flush_every == 0:
                    await producer.flush_async()
                if stop.is_set() or (max_ticks is not None and stats.published >= max_ticks):
                    stop.set()
                    break
        finally:
            stats.parse_issues += int(getattr(feed, "issue_count", 0))
            await feed.close()
            await producer.flush_async()
        if not stop.is_set():
            log.warning("feed disconnected: reconnecting", source=source,
                        reason=getattr(feed, "closed_reason", ""))  # fmt: skip
            await _sleep_or_stop(stop, backoff_s * random.uniform(0.5, 1.0))
    return stats
