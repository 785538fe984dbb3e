"""Live vendor feeds: the :class:`VendorFeed` interface and a Polygon.io reference adapter.

A feed connects, then yields normalized events in the vendor's arrival order::

    feed = PolygonFeed(api_key, ["T.AAPL", "Q.AAPL"])
    await feed.connect()
    try:
        async for event in feed:      # Trade | Quote | AggregateBar
            ...
    finally:
        await feed.close()

Normalized events carry ``ts_ms`` as epoch milliseconds UTC and sizes in shares. Parsing is
pure (:class:`PolygonParser`, one websocket frame in, events and issues out) so it can be
tested on recorded frames; the socket is behind a :class:`Transport` seam. A bad message
never stops the feed: it becomes a :class:`ParseIssue` with a reason, counted on the feed.

Polygon.io (now also branded Massive) stocks websocket, as documented: every frame is a
JSON array of objects told apart by ``ev``: ``T`` trade (``sym, p, s, t, x, i, c, q, z``),
``Q`` NBBO quote (``sym, bp, bs, ap, as, t, bx, ax``; sizes in round lots of 100 shares),
``A``/``AM`` second/minute aggregates (``sym, o, h, l, c, v, vw, s, e``) and ``status``
messages (``connected``, ``auth_success``, ``auth_failed``, ``success``, ``error``). ``t``,
``s`` and ``e`` are Unix milliseconds (SIP time for ``t``).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from tickcast.errors import DependencyError

__all__ = [
    "AggregateBar",
    "ParseIssue",
    "ParseResult",
    "PolygonFeed",
    "PolygonParser",
    "Quote",
    "StatusMessage",
    "Trade",
    "Transport",
    "VendorEvent",
    "VendorFeed",
]


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade: canonical ``symbol, ts_ms, price, volume`` plus vendor details."""

    kind: ClassVar[str] = "trade"
    symbol: str
    ts_ms: int
    price: float
    volume: float
    exchange: str = ""
    trade_id: str = ""
    conditions: tuple[int, ...] = ()
    sequence: int | None = None

    def as_record(self) -> dict[str, Any]:
        """The canonical trade row (``symbol, ts_ms, price, volume``)."""
        return {"symbol": self.symbol, "ts_ms": self.ts_ms, "price": self.price,
                "volume": self.volume}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and offer; sizes in shares."""

    kind: ClassVar[str] = "quote"
    symbol: str
    ts_ms: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float


@dataclass(frozen=True, slots=True)
class AggregateBar:
    """A vendor-built bar over ``[start_ms, end_ms)``; ``ts_ms`` is ``end_ms``."""

    kind: ClassVar[str] = "bar"
    symbol: str
    start_ms: int
    end_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float

    @property
    def ts_ms(self) -> int:
        """When the bar is complete."""
        return self.end_ms


VendorEvent = Trade | Quote | AggregateBar


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A control message from the vendor (connection, authentication, subscription)."""

    status: str
    message: str


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """A message that could not be normalized, with a machine-readable ``reason``."""

    reason: str
    detail: str
    raw: str


@dataclass(slots=True)
class ParseResult:
    """What one frame held."""

    events: list[VendorEvent] = field(default_factory=list)
    statuses: list[StatusMessage] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)


@runtime_checkable
class VendorFeed(Protocol):
    """A live source of normalized ticks: ``connect``, ``async for``, ``close``.

    ``connect`` raises :class:`~tickcast.errors.DependencyError` when the vendor is
    unreachable or refuses the credentials. Iteration ends when the connection closes;
    reconnecting (with backoff) is the caller's policy.
    """

    async def connect(self) -> None:
        """Open the connection, authenticate and subscribe."""
        ...

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ...

    def __aiter__(self) -> AsyncIterator[VendorEvent]:
        """Normalized events in arrival order."""
        ...


class Transport(Protocol):
    """The socket seam: a websocket client connection (``websockets`` fits as is)."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


TransportFactory = Callable[[str], Awaitable[Transport]]


def _num(obj: dict[str, Any], key: str) -> float:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key}={value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{key}={value!r} is not finite")
    return number


def _ms(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{key}={value!r} is not a Unix millisecond timestamp")
    return value


def _sym(obj: dict[str, Any]) -> str:
    value = obj["sym"]
    if not isinstance(value, str) or not value:
        raise TypeError(f"sym={value!r} is not a symbol")
    return value


class PolygonParser:
    """Pure parser of Polygon.io stocks websocket frames into normalized events."""

    def __init__(self, quote_lot_size: float = 100.0) -> None:
        self.quote_lot_size = quote_lot_size

    def parse(self, frame: str | bytes) -> ParseResult:
        """Parse one frame (a JSON array of messages; a lone object is accepted too)."""
        result = ParseResult()
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        try:
            payload = json.loads(text)
        except ValueError as exc:
            result.issues.append(ParseIssue("bad_json", str(exc), text[:500]))
            return result
        messages = payload if isinstance(payload, list) else [payload]
        for message in messages:
            self._parse_message(message, result)
        return result

    def _parse_message(self, msg: Any, result: ParseResult) -> None:
        if not isinstance(msg, dict):
            result.issues.append(ParseIssue("not_an_object", type(msg).__name__, repr(msg)[:500]))
            return
        ev = msg.get("ev")
        try:
            if ev == "T":
                result.events.append(self._trade(msg))
            elif ev == "Q":
                result.events.append(self._quote(msg))
            elif ev in ("A", "AM"):
                result.events.append(self._aggregate(msg))
            elif ev == "status":
                result.statuses.append(
                    StatusMessage(str(msg.get("status", "")), str(msg.get("message", "")))
                )
            else:
                result.issues.append(ParseIssue("unknown_event", f"ev={ev!r}", json.dumps(msg)))
        except KeyError as exc:
            result.issues.append(ParseIssue("missing_field", f"ev={ev}: {exc}", json.dumps(msg)))
        except (TypeError, ValueError) as exc:
            result.issues.append(ParseIssue("bad_value", f"ev={ev}: {exc}", json.dumps(msg)))

    def _trade(self, m: dict[str, Any]) -> Trade:
        price, size = _num(m, "p"), _num(m, "s")
        if price <= 0 or size < 0:
            raise ValueError(f"price {price} / size {size} out of range")
        conditions = m.get("c") or ()
        return Trade(
            symbol=_sym(m),
            ts_ms=_ms(m, "t"),
            price=price,
            volume=size,
            exchange=str(m.get("x", "")),
            trade_id=str(m.get("i", "")),
            conditions=tuple(int(c) for c in conditions),
            sequence=int(m["q"]) if "q" in m else None,
        )

    def _quote(self, m: dict[str, Any]) -> Quote:
        return Quote(
            symbol=_sym(m),
            ts_ms=_ms(m, "t"),
            bid=_num(m, "bp"),
            ask=_num(m, "ap"),
            bid_size=_num(m, "bs") * self.quote_lot_size,
            ask_size=_num(m, "as") * self.quote_lot_size,
        )

    def _aggregate(self, m: dict[str, Any]) -> AggregateBar:
        return AggregateBar(
            symbol=_sym(m),
            start_ms=_ms(m, "s"),
            end_ms=_ms(m, "e"),
            open=_num(m, "o"),
            high=_num(m, "h"),
            low=_num(m, "l"),
            close=_num(m, "c"),
            volume=_num(m, "v"),
            vwap=_num(m, "vw") if "vw" in m else math.nan,
        )


async def _websocket_transport(url: str) -> Transport:
    """The default transport: a ``websockets`` client connection (imported when used)."""
    from websockets.asyncio.client import connect

    connection: Transport = await connect(url, max_size=2**24)
    return connection


class PolygonFeed:
    """A :class:`VendorFeed` for the Polygon.io stocks websocket (auth, subscribe, parse)."""

    def __init__(
        self,
        api_key: str,
        subscriptions: Sequence[str] = ("T.*",),
        url: str = "wss://socket.polygon.io/stocks",
        transport_factory: TransportFactory = _websocket_transport,
        parser: PolygonParser | None = None,
        keep_issues: int = 100,
    ) -> None:
        self._api_key = api_key
        self.subscriptions = list(subscriptions)
        self.url = url
        self._factory = transport_factory
        self.parser = parser or PolygonParser()
        self._transport: Transport | None = None
        self._pending: list[VendorEvent] = []
        self.issue_count = 0
        self.issues: list[ParseIssue] = []  # the most recent ``keep_issues``
        self._keep = keep_issues
        self.closed_reason = ""

    def _note(self, result: ParseResult) -> None:
        self.issue_count += len(result.issues)
        self.issues = (self.issues + result.issues)[-self._keep :]

    async def _await_status(self, wanted: str, refused: set[str]) -> None:
        assert self._transport is not None
        while True:
            result = self.parser.parse(await self._transport.recv())
            self._note(result)
            self._pending.extend(result.events)
            for status in result.statuses:
                if status.status == wanted:
                    return
                if status.status in refused:
                    raise DependencyError("polygon", f"{status.status}: {status.message}")

    async def connect(self) -> None:
        """Connect, wait for ``connected``, authenticate, then subscribe."""
        try:
            self._transport = await self._factory(self.url)
            await self._await_status("connected", {"error", "max_connections"})
            await self._transport.send(json.dumps({"action": "auth", "params": self._api_key}))
            await self._await_status("auth_success", {"auth_failed", "error"})
            params = ",".join(self.subscriptions)
            await self._transport.send(json.dumps({"action": "subscribe", "params": params}))
        except DependencyError:
            await self.close()
            raise
        except (OSError, EOFError, TimeoutError) as exc:
            await self.close()
            raise DependencyError("polygon", f"cannot connect to {self.url}: {exc}") from exc
        except Exception as exc:  # websockets' ConnectionClosed and handshake errors
            await self.close()
            raise DependencyError("polygon", f"connection to {self.url} failed: {exc}") from exc

    async def close(self) -> None:
        """Close the socket; safe to call twice."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    async def __aiter__(self) -> AsyncIterator[VendorEvent]:
        """Yield events until the connection closes (bad messages are counted, skipped)."""
        if self._transport is None:
            raise DependencyError("polygon", "feed is not connected", "await feed.connect()")
        while self._pending:
            yield self._pending.pop(0)
        while self._transport is not None:
            try:
                frame = await self._transport.recv()
            except Exception as exc:  # the connection closed (normally or not): iteration ends
                self.closed_reason = repr(exc)
                return
            result = self.parser.parse(frame)
            self._note(result)
            for event in result.events:
                yield event
