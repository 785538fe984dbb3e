"""The Alpha Vantage intraday parser on a document in the API's format, and event → Tick."""

from __future__ import annotations

from pathlib import Path

from streams.alphavantage import AlphaVantageParser
from streams.feed import event_tick
from streams.vendor import PolygonParser, Quote

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "alphavantage_intraday_ibm.json"


def test_bars_in_time_order_stamped_at_their_end_in_utc() -> None:
    result = AlphaVantageParser().parse(FIXTURE.read_bytes())
    assert [b.close for b in result.events] == [168.9, 168.95, 169.0]
    first = result.events[0]
    # 19:57 New York (EDT, UTC-4) = 23:57 UTC; a one-minute bar ends at 23:58
    assert first.start_ms == 1_716_940_620_000
    assert first.ts_ms == first.start_ms + 60_000
    assert [i.reason for i in result.issues] == ["bad_value"]
    assert "19:56" in result.issues[0].detail


def test_refusals_and_garbage_are_statuses_and_issues() -> None:
    parser = AlphaVantageParser()
    limited = parser.parse('{"Note": "Thank you for using Alpha Vantage! call frequency..."}')
    assert [s.status for s in limited.statuses] == ["Note"]
    assert limited.events == []
    assert [i.reason for i in parser.parse(b"<html>").issues] == ["bad_json"]
    assert [i.reason for i in parser.parse("[]").issues] == ["not_an_object"]
    assert [i.reason for i in parser.parse('{"Meta Data": {}}').issues] == ["missing_field"]


def test_a_trade_carries_the_latest_quote_and_a_bar_ends_at_its_end() -> None:
    parser = PolygonParser()
    quotes: dict[str, Quote] = {}
    (quote,) = parser.parse('[{"ev":"Q","sym":"A","bp":9.9,"bs":2,"ap":10.1,"as":3,"t":5}]').events
    assert event_tick(quote, "feed:polygon", quotes) is None
    (trade,) = parser.parse('[{"ev":"T","sym":"A","p":10.0,"s":5,"t":6,"q":7}]').events
    tick = event_tick(trade, "feed:polygon", quotes)
    assert tick is not None
    assert (tick["kind"], tick["bid"], tick["ask_size"], tick["sequence"]) == (
        "TRADE",
        9.9,
        300.0,
        7,
    )
    bar = AlphaVantageParser().parse(FIXTURE.read_bytes()).events[0]
    tick = event_tick(bar, "feed:alphavantage", quotes)
    assert tick is not None
    assert (tick["kind"], tick["ts"], tick["interval_ms"]) == ("BAR", bar.end_ms, 60_000)
