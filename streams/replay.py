"""Publish market data to the ``ticks`` topic: dataset replay in event-time order.

Records are keyed by symbol and Avro-encoded (``Tick``); the correlation id of a tick is
derived from its source, symbol, time and position, so two replays of the same data give
identical records (replay determinism). While tracing, one tick in
``TICKCAST_TRACE_TICK_RATIO`` starts a trace: its headers carry the correlation id and the
``traceparent`` of a producer span (the records themselves are unchanged). ``speed=None``
publishes as fast as the producer takes them; ``speed=N`` paces event time at N× real time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from streams.codec import get_codec
from streams.correlation import HeaderList, kafka_headers
from streams.producer import BatchProducer
from tickcast.config import Settings
from tickcast.tracing import Tracing
from tickcast.tracing import active as active_tracing

OPTIONAL_QUOTES = ("bid", "ask", "bid_size", "ask_size")


def correlation_id(source: str, symbol: str, ts_ms: int, position: int) -> str:
    """A stable id for one published tick (blake2b, 16 hex chars)."""
    raw = f"{source}|{symbol}|{ts_ms}|{position}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def tick_records(frame: pd.DataFrame, source: str) -> Iterator[dict[str, Any]]:
    """Tick records from a canonical bars frame (open/high/low/close) or trades frame (price).

    The frame is published in its row order; sort it by ``(ts_ms, symbol)`` for event time.
    """
    is_bar = "close" in frame.columns
    n = len(frame)
    symbols = frame["symbol"].astype(str).to_numpy()
    ts = frame["ts_ms"].to_numpy(dtype=np.int64)
    volume = frame["volume"].to_numpy(dtype=np.float64)
    if is_bar:
        o, h, lo, c = (
            frame[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")
        )
    else:
        o = h = lo = c = frame["price"].to_numpy(dtype=np.float64)
    quotes = {
        k: frame[k].to_numpy(dtype=np.float64) if k in frame.columns else None
        for k in OPTIONAL_QUOTES
    }
    interval = int(frame["interval_ms"].iloc[0]) if is_bar and "interval_ms" in frame else None
    kind = "BAR" if is_bar else "TRADE"
    for i in range(n):
        symbol, t = symbols[i], int(ts[i])
        record: dict[str, Any] = {
            "symbol": symbol,
            "ts": t,
            "kind": kind,
            "price": float(c[i]),
            "open": float(o[i]),
            "high": float(h[i]),
            "low": float(lo[i]),
            "close": float(c[i]),
            "volume": float(volume[i]),
            "interval_ms": interval,
            "source": source,
            "sequence": i,
            "correlation_id": correlation_id(source, symbol, t, i),
        }
        for k, column in quotes.items():
            value = None if column is None else float(column[i])
            record[k] = None if value is None or value != value else value
        yield record


def traced_tick_headers(tracing: Tracing, record: dict[str, Any], topic: str) -> HeaderList:
    """The headers of a traced tick: its correlation id and the context of a producer span
    (``<topic> publish``) that starts its trace (tickcast.tracing)."""
    cid = record["correlation_id"]
    attributes = {"tickcast.correlation_id": cid, "tickcast.symbol": record["symbol"]}
    trace_headers = tracing.publish_headers(f"{topic} publish", **attributes)
    return [*(kafka_headers(cid) or []), *trace_headers]


def publish(
    settings: Settings,
    frame: pd.DataFrame,
    source: str,
    speed: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    topic: str | None = None,
) -> int:
    """Publish a frame to ``ticks`` (or ``topic``); returns the number of records sent."""
    codec = get_codec("Tick")
    producer = BatchProducer(settings)
    target = topic or settings.topic("ticks")
    tracing = active_tracing()
    started = time.monotonic()
    first_ts: int | None = None
    sent = 0
    for record in tick_records(frame, source):
        if speed:
            first_ts = record["ts"] if first_ts is None else first_ts
            due = started + (record["ts"] - first_ts) / 1000.0 / speed
            delay = due - time.monotonic()
            if delay > 0:
                producer.poll()
                time.sleep(delay)
        headers = None
        if tracing is not None and tracing.sample_tick():
            headers = traced_tick_headers(tracing, record, target)
        producer.produce(target, record["symbol"].encode(), codec.encode(record), headers)
        sent += 1
        if sent % 5000 == 0:
            producer.poll()
            if on_progress:
                on_progress(5000)
    producer.flush()
    if on_progress:
        on_progress(sent % 5000)
    return sent
