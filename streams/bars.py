"""Incremental bar builders from trades: time bars, volume bars and dollar bars.

Each builder keeps one small accumulator per symbol and does O(1) work per trade; its whole
state is picklable (a checkpoint is ``pickle.dumps(builder)``). Time is event time.

- :class:`TimeBarBuilder` buckets trades by ``ts_ms // interval`` per symbol and emits a
  symbol's bar when a trade of that symbol from a later bucket arrives (``close_until``
  closes buckets on a watermark, ``flush`` closes all at the end). Buckets without trades
  emit nothing. A trade for a bucket already emitted is late: it is counted and dropped.
- :class:`VolumeBarBuilder` / :class:`DollarBarBuilder` emit a bar on the trade that brings
  the bar's volume (or price × volume) to the threshold or beyond; the trade is not split.

Trades with a non-finite or non-positive price, or a negative or non-finite volume, are
counted in ``rejected`` and ignored (validation upstream dead-letters them with a reason).

>>> b = TimeBarBuilder(60_000)
>>> b.update("ES", 1_000, 10.0, 2) is None
True
>>> b.update("ES", 30_000, 12.0, 1) is None
True
>>> bar = b.update("ES", 61_000, 11.0, 5)
>>> (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.count, round(bar.vwap, 4))
(10.0, 12.0, 10.0, 12.0, 3.0, 2, 10.6667)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "Bar",
    "DollarBarBuilder",
    "TimeBarBuilder",
    "VolumeBarBuilder",
    "bars_from_trades",
    "bars_to_frame",
]

BAR_FRAME_COLUMNS = (
    "symbol",
    "ts_ms",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "start_ms",
    "vwap",
    "count",
    "dollar_volume",
)


@dataclass(frozen=True, slots=True)
class Bar:
    """A finished bar. ``end_ms`` is when it is complete (canonical ``ts_ms``).

    Time bars: ``[start_ms, end_ms)`` is the bucket. Volume/dollar bars: ``start_ms`` and
    ``end_ms`` are the first and last trade's timestamps.
    """

    symbol: str
    start_ms: int
    end_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    dollar_volume: float
    count: int

    @property
    def vwap(self) -> float:
        """Volume-weighted average price (NaN when the bar traded zero volume)."""
        return self.dollar_volume / self.volume if self.volume > 0 else math.nan


@dataclass(slots=True)
class _Acc:
    """The running bar of one symbol: constant size whatever the number of trades."""

    start_ms: int
    last_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    dollar: float
    count: int

    @classmethod
    def first(cls, start_ms: int, ts_ms: int, price: float, volume: float) -> _Acc:
        volume = float(volume)
        return cls(start_ms, ts_ms, price, price, price, price, volume, price * volume, 1)

    def add(self, ts_ms: int, price: float, volume: float) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.last_ms = max(self.last_ms, ts_ms)
        self.volume += volume
        self.dollar += price * volume
        self.count += 1

    def bar(self, symbol: str, end_ms: int) -> Bar:
        return Bar(
            symbol,
            self.start_ms,
            end_ms,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.dollar,
            self.count,
        )


def _valid(price: float, volume: float) -> bool:
    return math.isfinite(price) and price > 0 and math.isfinite(volume) and volume >= 0


class TimeBarBuilder:
    """OHLCV + VWAP + trade count per symbol and fixed event-time interval."""

    def __init__(self, interval_ms: int, origin_ms: int = 0) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        self.interval_ms = interval_ms
        self.origin_ms = origin_ms
        self._open: dict[str, _Acc] = {}
        self._closed_until: dict[str, int] = {}  # end of the last emitted bucket per symbol
        self.late = 0
        self.rejected = 0

    def bucket_start(self, ts_ms: int) -> int:
        """Start of the bucket holding ``ts_ms``."""
        offset = (ts_ms - self.origin_ms) // self.interval_ms * self.interval_ms
        return self.origin_ms + offset

    def update(self, symbol: str, ts_ms: int, price: float, volume: float) -> Bar | None:
        """Add one trade; return the symbol's previous bar if this trade closed it."""
        if not _valid(price, volume):
            self.rejected += 1
            return None
        start = self.bucket_start(ts_ms)
        acc = self._open.get(symbol)
        if acc is None:
            if start < self._closed_until.get(symbol, start):
                self.late += 1
                return None
            self._open[symbol] = _Acc.first(start, ts_ms, price, volume)
            return None
        if start == acc.start_ms:
            acc.add(ts_ms, price, volume)
            return None
        if start < acc.start_ms:
            self.late += 1
            return None
        done = self._emit(symbol, acc)
        self._open[symbol] = _Acc.first(start, ts_ms, price, volume)
        return done

    def _emit(self, symbol: str, acc: _Acc) -> Bar:
        end = acc.start_ms + self.interval_ms
        self._closed_until[symbol] = end
        return acc.bar(symbol, end)

    def close_until(self, watermark_ms: int) -> list[Bar]:
        """Emit every open bar whose bucket ends at or before ``watermark_ms``."""
        done = [
            (symbol, acc)
            for symbol, acc in self._open.items()
            if acc.start_ms + self.interval_ms <= watermark_ms
        ]
        bars = [self._emit(symbol, acc) for symbol, acc in done]
        for symbol, _ in done:
            del self._open[symbol]
        return sorted(bars, key=lambda b: (b.end_ms, b.symbol))

    def flush(self) -> list[Bar]:
        """Emit all open bars (end of data), ordered by (end_ms, symbol)."""
        bars = [self._emit(symbol, acc) for symbol, acc in self._open.items()]
        self._open.clear()
        return sorted(bars, key=lambda b: (b.end_ms, b.symbol))


class _ThresholdBarBuilder:
    """A bar closes on the trade that brings its measure to ``threshold`` or beyond."""

    def __init__(self, threshold: float) -> None:
        if not threshold > 0:
            raise ValueError("threshold must be positive")
        self.threshold = threshold
        self._open: dict[str, _Acc] = {}
        self.rejected = 0

    def _measure(self, acc: _Acc) -> float:
        raise NotImplementedError

    def update(self, symbol: str, ts_ms: int, price: float, volume: float) -> Bar | None:
        """Add one trade; return the symbol's bar if this trade completed it."""
        if not _valid(price, volume):
            self.rejected += 1
            return None
        acc = self._open.get(symbol)
        if acc is None:
            acc = self._open[symbol] = _Acc.first(ts_ms, ts_ms, price, volume)
        else:
            acc.add(ts_ms, price, volume)
        if self._measure(acc) >= self.threshold:
            del self._open[symbol]
            return acc.bar(symbol, acc.last_ms)
        return None

    def flush(self) -> list[Bar]:
        """Emit the unfinished bars (below threshold) at the end of data."""
        bars = [acc.bar(symbol, acc.last_ms) for symbol, acc in self._open.items()]
        self._open.clear()
        return sorted(bars, key=lambda b: (b.end_ms, b.symbol))


class VolumeBarBuilder(_ThresholdBarBuilder):
    """Bars of (at least) ``threshold`` shares or contracts each."""

    def _measure(self, acc: _Acc) -> float:
        return acc.volume


class DollarBarBuilder(_ThresholdBarBuilder):
    """Bars of (at least) ``threshold`` traded value (price × volume) each."""

    def _measure(self, acc: _Acc) -> float:
        return acc.dollar


Builder = TimeBarBuilder | VolumeBarBuilder | DollarBarBuilder


def bars_from_trades(builder: Builder, trades: pd.DataFrame, flush: bool = True) -> list[Bar]:
    """Feed a canonical trades frame (``symbol, ts_ms, price, volume``) through ``builder``."""
    out: list[Bar] = []
    rows: Iterable[tuple[str, int, float, float]] = zip(
        trades["symbol"].tolist(),
        trades["ts_ms"].tolist(),
        trades["price"].tolist(),
        trades["volume"].tolist(),
        strict=True,
    )
    update = builder.update
    for symbol, ts_ms, price, volume in rows:
        bar = update(symbol, ts_ms, price, volume)
        if bar is not None:
            out.append(bar)
    if flush:
        out.extend(builder.flush())
    return out


def bars_to_frame(bars: Iterable[Bar]) -> pd.DataFrame:
    """Bars as a frame: canonical bar columns (``ts_ms`` = ``end_ms``) plus extras."""
    rows = [
        (
            b.symbol,
            b.end_ms,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.start_ms,
            b.vwap,
            b.count,
            b.dollar_volume,
        )
        for b in bars
    ]
    frame = pd.DataFrame(rows, columns=list(BAR_FRAME_COLUMNS))
    return frame.astype({"ts_ms": "int64", "start_ms": "int64", "count": "int64"})
