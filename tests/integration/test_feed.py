"""``tickcast feed``'s runner on the real broker, against recorded-format vendor traffic served
over loopback (127.0.0.1): a Polygon-style websocket and Alpha Vantage's HTTP API, each with a
refused first connection and a dropped one, so the backoff and reconnect paths run."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from streams.alphavantage import AlphaVantageFeed
from streams.feed import run_feed
from streams.topics import apply_topics
from streams.vendor import PolygonFeed
from tests.integration.pipeline import read_topic
from tickcast.config import Settings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
POLYGON = (FIXTURES / "polygon_stocks_ws.jsonl").read_text().splitlines()
LATER = [
    '[{"ev":"T","sym":"AAPL","p":192.4,"s":50,"t":1748476803000,"q":3681500}]',
    '[{"ev":"T","sym":"MSFT","p":431.2,"s":10,"t":1748476803100,"q":3681501}]',
]


@pytest.fixture
def topics(settings: Settings) -> Settings:
    apply_topics(settings)
    return settings


def test_polygon_feed_reconnects_and_publishes_validated_ticks(topics: Settings) -> None:
    settings = topics
    connections = {"n": 0}

    async def handler(ws: ServerConnection) -> None:
        connections["n"] += 1
        if connections["n"] == 1:  # refused: closes before saying 'connected'
            await ws.close()
            return
        await ws.send(POLYGON[0])  # connected
        await ws.recv()  # auth
        await ws.send(POLYGON[1])  # auth_success
        await ws.recv()  # subscribe
        frames = POLYGON[2:] if connections["n"] == 2 else [POLYGON[2], *LATER]
        for frame in frames:
            await ws.send(frame)
        if connections["n"] == 2:
            await ws.close()  # dropped: the feed reconnects
        else:
            await ws.wait_closed()  # open until the feed has what it wants and closes

    async def main() -> Any:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}"
            stop = asyncio.Event()
            return await asyncio.wait_for(
                run_feed(
                    settings, lambda: PolygonFeed("key", ["T.*"], url=url), "feed:polygon",
                    stop, max_ticks=6, backoff_s=0.05,
                ),
                timeout=60,
            )  # fmt: skip

    stats = asyncio.run(main())
    assert stats.failed_connects == 1
    assert stats.connections == 2  # the dropped one and its successor
    assert stats.published == 6
    assert stats.refused == {"OUT_OF_ORDER": 1}  # the AM bar ends before AAPL's last trade
    assert stats.parse_issues == 4  # three bad messages and a truncated frame
    ticks = read_topic(settings, "ticks", "Tick", lambda r: len(r) >= 6, timeout_s=30)
    got = sorted((t["symbol"], t["ts"], t["kind"], t["price"], t["bid"]) for t in ticks)
    assert got == [
        ("AAPL", 1748476801234, "TRADE", 192.31, None),
        ("AAPL", 1748476801517, "TRADE", 192.32, 192.3),  # carries the quote before it
        ("AAPL", 1748476803000, "TRADE", 192.4, 192.3),
        ("MSFT", 1748476801240, "TRADE", 431.05, None),
        ("MSFT", 1748476802000, "BAR", 431.1, None),
        ("MSFT", 1748476803100, "TRADE", 431.2, None),
    ]
    assert {t["source"] for t in ticks} == {"feed:polygon"}
    dead = read_topic(settings, "ticks.dlq", "DeadLetter", lambda r: len(r) >= 1, timeout_s=30)
    assert [(d["reason"], d["source_topic"], d["event_ts"]) for d in dead] == [
        ("OUT_OF_ORDER", "feed:polygon", 1748476800000)
    ]


class _Responses:
    """What the loopback Alpha Vantage answers, request after request (the last repeats)."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.seen: list[str] = []

    def serve(self) -> Iterator[ThreadingHTTPServer]:
        responses = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                responses.seen.append(self.path)
                body = responses.bodies[min(len(responses.seen), len(responses.bodies)) - 1]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()


def test_alphavantage_feed_polls_backs_off_and_publishes_each_bar_once(topics: Settings) -> None:
    settings = topics
    doc = json.loads((FIXTURES / "alphavantage_intraday_ibm.json").read_text())
    later = json.loads(json.dumps(doc))
    later["Time Series (1min)"]["2024-05-28 20:00:00"] = {
        "1. open": "169.0000", "2. high": "169.1000", "3. low": "169.0000",
        "4. close": "169.0500", "5. volume": "9",
    }  # fmt: skip
    limited = b'{"Note": "Thank you for using Alpha Vantage! Our standard API rate limit is 25"}'
    responses = _Responses([limited, json.dumps(doc).encode(), json.dumps(later).encode()])
    server_cm = responses.serve()
    server = next(server_cm)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/query"
        stats = asyncio.run(
            asyncio.wait_for(
                run_feed(
                    settings,
                    lambda: AlphaVantageFeed("key", "IBM", url=url, poll_s=0.05),
                    "feed:alphavantage", asyncio.Event(), max_ticks=4, backoff_s=0.05,
                ),
                timeout=60,
            )
        )  # fmt: skip
    finally:
        next(server_cm, None)
    assert stats.failed_connects == 1  # the rate-limit note
    assert stats.published == 4
    assert "function=TIME_SERIES_INTRADAY" in responses.seen[0]
    assert "symbol=IBM" in responses.seen[0]
    ticks = read_topic(settings, "ticks", "Tick", lambda r: len(r) >= 4, timeout_s=30)
    assert [(t["kind"], t["close"], t["interval_ms"]) for t in ticks] == [
        ("BAR", 168.9, 60_000), ("BAR", 168.95, 60_000), ("BAR", 169.0, 60_000),
        ("BAR", 169.05, 60_000),
    ]  # fmt: skip
    assert ticks[-1]["ts"] == 1_716_940_800_000 + 60_000  # the 20:00 EDT bar ends 00:01 UTC
