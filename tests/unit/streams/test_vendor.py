"""streams.vendor: Polygon.io frames parsed from a recorded fixture, and the feed's protocol.

``tests/fixtures/polygon_stocks_ws.jsonl`` holds one websocket frame per line, written by
hand from Polygon's documented stocks messages (status, T, Q, AM, A), plus broken frames:
a trade without a price, a price sent as text, an unknown event and truncated JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams.files import TRADE_COLUMNS, ColumnMap, normalize_frame
from streams.vendor import (
    AggregateBar,
    PolygonFeed,
    PolygonParser,
    Quote,
    Trade,
    VendorEvent,
    VendorFeed,
)
from tickcast.errors import DependencyError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "polygon_stocks_ws.jsonl"
FRAMES = FIXTURE.read_text().splitlines()

EXPECTED: list[VendorEvent] = [
    Trade("AAPL", 1748476801234, 192.31, 100.0, "4", "52983525029461", (12, 37), 3681328),
    Trade("MSFT", 1748476801240, 431.05, 25.0, "11", "71675577320245", (), 3681331),
    Quote("AAPL", 1748476801240, 192.3, 192.32, 200.0, 300.0),
    Trade("AAPL", 1748476801517, 192.32, 300.0, "10", "52983525029462", (), 3681402),
    AggregateBar(
        "AAPL", 1748476740000, 1748476800000, 192.25, 192.4, 192.18, 192.31, 41101.0, 192.2841
    ),
    AggregateBar(
        "MSFT", 1748476801000, 1748476802000, 431.05, 431.12, 431.02, 431.1, 1200.0, 431.0713
    ),
]


def test_parser_normalizes_every_documented_message() -> None:
    parser = PolygonParser()
    results = [parser.parse(frame) for frame in FRAMES]
    events = [e for r in results for e in r.events]
    assert events == EXPECTED
    statuses = [s.status for r in results for s in r.statuses]
    assert statuses == ["connected", "auth_success", "success"]
    reasons = [i.reason for r in results for i in r.issues]
    assert reasons == ["missing_field", "bad_value", "unknown_event", "bad_json"]
    assert EXPECTED[0].as_record() == {
        "symbol": "AAPL",
        "ts_ms": 1748476801234,
        "price": 192.31,
        "volume": 100.0,
    }
    assert EXPECTED[4].ts_ms == 1748476800000


def test_parser_never_raises_on_junk() -> None:
    parser = PolygonParser()
    for junk in ["", "null", "42", '["x"]', b"\xff\xfe", '[{"ev":"T","sym":"A","p":NaN}]',
                 '[{"ev":"T","sym":"","p":1,"s":1,"t":1}]', '[{"ev":"Q","sym":"A","t":-1}]',
                 '[{"ev":"T","sym":"A","p":1,"s":1,"t":true}]']:  # fmt: skip
        result = parser.parse(junk)
        assert result.events == []
        assert len(result.issues) >= 1, junk
    lone = parser.parse('{"ev":"T","sym":"A","p":2.5,"s":3,"t":5}')
    assert lone.events == [Trade("A", 5, 2.5, 3.0)]
    assert math.isnan(parser.parse('[{"ev":"A","sym":"A","o":1,"h":1,"l":1,"c":1,"v":1,'
                                   '"s":0,"e":1}]').events[0].vwap)  # fmt: skip


def test_trades_feed_the_canonical_trade_schema() -> None:
    import pandas as pd

    parser = PolygonParser()
    trades = [e for f in FRAMES for e in parser.parse(f).events if isinstance(e, Trade)]
    frame = normalize_frame(
        pd.DataFrame([t.as_record() for t in trades]), "trades", ColumnMap(ts_unit="ms")
    )
    assert tuple(frame.columns) == TRADE_COLUMNS
    assert frame["symbol"].tolist() == ["AAPL", "MSFT", "AAPL"]


class ReplayTransport:
    """A fake socket that answers with the fixture's frames and records what was sent."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = list(frames)
        self.sent: list[dict[str, str]] = []
        self.closed = False

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    async def recv(self) -> str:
        if not self.frames:
            raise ConnectionError("closed by peer")
        return self.frames.pop(0)

    async def close(self) -> None:
        self.closed = True


async def _collect(feed: PolygonFeed) -> list[VendorEvent]:
    return [event async for event in feed]


async def test_feed_authenticates_subscribes_and_streams_events() -> None:
    transport = ReplayTransport(FRAMES)
    urls: list[str] = []

    async def factory(url: str) -> ReplayTransport:
        urls.append(url)
        return transport

    feed = PolygonFeed("k3y", ["T.AAPL", "Q.AAPL"], url="wss://example.invalid/stocks",
                       transport_factory=factory)  # fmt: skip
    assert isinstance(feed, VendorFeed)
    await feed.connect()
    assert urls == ["wss://example.invalid/stocks"]
    assert transport.sent == [
        {"action": "auth", "params": "k3y"},
        {"action": "subscribe", "params": "T.AAPL,Q.AAPL"},
    ]
    assert await _collect(feed) == EXPECTED
    assert feed.issue_count == 4
    assert "closed by peer" in feed.closed_reason
    await feed.close()
    await feed.close()
    assert transport.closed


async def test_refused_credentials_are_a_dependency_error() -> None:
    frames = [
        '[{"ev":"status","status":"connected","message":"Connected Successfully"}]',
        '[{"ev":"status","status":"auth_failed","message":"authentication failed"}]',
    ]
    transport = ReplayTransport(frames)

    async def factory(url: str) -> ReplayTransport:
        return transport

    feed = PolygonFeed("bad", transport_factory=factory)
    with pytest.raises(DependencyError, match="auth_failed"):
        await feed.connect()
    assert transport.closed
    with pytest.raises(DependencyError, match="not connected"):
        await _collect(feed)


async def test_unreachable_vendor_is_a_dependency_error() -> None:
    feed = PolygonFeed("k", url="ws://127.0.0.1:9/stocks")
    with pytest.raises(DependencyError, match="polygon"):
        await feed.connect()


async def test_real_websocket_on_loopback_replays_the_fixture() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    received: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(FRAMES[0])
        received.append(str(await ws.recv()))
        await ws.send(FRAMES[1])
        received.append(str(await ws.recv()))
        for frame in FRAMES[2:]:
            await ws.send(frame)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        feed = PolygonFeed("k", ["AM.*"], url=f"ws://127.0.0.1:{port}/stocks")
        await feed.connect()
        events: AsyncIterator[VendorEvent] = feed.__aiter__()
        got = [event async for event in events]
        await feed.close()
    assert got == EXPECTED
    assert [json.loads(m)["action"] for m in received] == ["auth", "subscribe"]
