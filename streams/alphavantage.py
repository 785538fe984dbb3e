"""Alpha Vantage intraday bars (``TIME_SERIES_INTRADAY`` JSON) as a :class:`VendorFeed`.

The API answers one JSON document per request::

    {"Meta Data": {"2. Symbol": "IBM", "4. Interval": "1min", "6. Time Zone": "US/Eastern", ...},
     "Time Series (1min)": {"2024-05-28 19:59:00": {"1. open": "169.0100", "2. high": ...,
                            "3. low": ..., "4. close": ..., "5. volume": "25"}, ...}}

Each key is the bar's **start** in the document's time zone (the last bar of a session
ending at 20:00 is stamped 19:59:00), so a bar covers ``[start, start + interval)`` and its
tick time is its end. Limits and refusals come back as HTTP 200 with ``Error Message``,
``Note`` or ``Information`` instead of data. :class:`AlphaVantageParser` is pure (a document
in, bars and issues out); :class:`AlphaVantageFeed` polls over HTTP (``httpx``) and yields
each bar once, in time order.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pandas as pd

from streams.vendor import AggregateBar, ParseIssue, ParseResult, StatusMessage
from tickcast.errors import DependencyError

__all__ = ["AlphaVantageFeed", "AlphaVantageParser"]

_INTERVALS = {"1min": 60_000, "5min": 300_000, "15min": 900_000, "30min": 1_800_000,
              "60min": 3_600_000}  # fmt: skip
_REFUSALS = ("Error Message", "Note", "Information")


def _field(bar: dict[str, Any], key: str) -> float:
    value = float(bar[key])
    if not math.isfinite(value):
        raise ValueError(f"{key}={bar[key]!r} is not finite")
    return value


class AlphaVantageParser:
    """Pure parser of one ``TIME_SERIES_INTRADAY`` JSON document."""

    def parse(self, document: str | bytes | dict[str, Any]) -> ParseResult:
        """Bars in time order; a refusal is a status, a bad bar an issue."""
        result = ParseResult()
        if isinstance(document, dict):
            doc: Any = document
        else:
            try:
                doc = json.loads(document)
            except ValueError as exc:
                text = (
                    document.decode("utf-8", "replace") if isinstance(document, bytes) else document
                )
                result.issues.append(ParseIssue("bad_json", str(exc), text[:500]))
                return result
        if not isinstance(doc, dict):
            result.issues.append(ParseIssue("not_an_object", type(doc).__name__, repr(doc)[:500]))
            return result
        for key in _REFUSALS:
            if key in doc:
                result.statuses.append(StatusMessage(key, str(doc[key])))
                return result
        try:
            meta = doc["Meta Data"]
            symbol, interval = str(meta["2. Symbol"]), str(meta["4. Interval"])
            zone = str(meta.get("6. Time Zone", "US/Eastern"))
            series = doc[f"Time Series ({interval})"]
            step = _INTERVALS[interval]
        except (KeyError, TypeError) as exc:
            result.issues.append(ParseIssue("missing_field", repr(exc), json.dumps(doc)[:500]))
            return result
        for stamp in sorted(series):
            bar = series[stamp]
            try:
                local = pd.Timestamp(stamp).tz_localize(zone)
                start = int(local.tz_convert("UTC").value // 1_000_000)
                o, h = _field(bar, "1. open"), _field(bar, "2. high")
                lo, c, v = _field(bar, "3. low"), _field(bar, "4. close"), _field(bar, "5. volume")
            except (KeyError, TypeError, ValueError) as exc:
                result.issues.append(ParseIssue("bad_value", f"{stamp}: {exc!r}", json.dumps(bar)))
                continue
            result.events.append(
                AggregateBar(symbol, start, start + step, o, h, lo, c, v, math.nan)
            )
        return result


class AlphaVantageFeed:
    """Poll ``TIME_SERIES_INTRADAY`` for one symbol; yield every new bar once."""

    def __init__(
        self,
        api_key: str,
        symbol: str,
        interval: str = "1min",
        url: str = "https://www.alphavantage.co/query",
        poll_s: float = 60.0,
        timeout_s: float = 10.0,
        keep_issues: int = 100,
    ) -> None:
        if interval not in _INTERVALS:
            raise ValueError(f"interval must be one of {sorted(_INTERVALS)}")
        self._api_key = api_key
        self.symbol = symbol
        self.interval = interval
        self.url = url
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.parser = AlphaVantageParser()
        self._client: httpx.AsyncClient | None = None
        self._pending: list[AggregateBar] = []
        self.last_start = -1
        """Start of the newest bar yielded (bars at or before it are not yielded again)."""
        self.issue_count = 0
        self.issues: list[ParseIssue] = []
        self._keep = keep_issues
        self.closed_reason = ""

    async def _fetch(self) -> list[AggregateBar]:
        assert self._client is not None
        params = {"function": "TIME_SERIES_INTRADAY", "symbol": self.symbol,
                  "interval": self.interval, "apikey": self._api_key}  # fmt: skip
        response = await self._client.get(self.url, params=params)
        response.raise_for_status()
        result = self.parser.parse(response.content)
        self.issue_count += len(result.issues)
        self.issues = (self.issues + result.issues)[-self._keep :]
        if result.statuses:
            status = result.statuses[0]
            raise DependencyError("alphavantage", f"{status.status}: {status.message[:200]}")
        fresh = [
            b for b in result.events if isinstance(b, AggregateBar) and b.start_ms > self.last_start
        ]
        return fresh

    async def connect(self) -> None:
        """Open the client and fetch once (refused key or limit: DependencyError)."""
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            self._pending = await self._fetch()
        except httpx.HTTPError as exc:
            await self.close()
            raise DependencyError("alphavantage", f"cannot reach {self.url}: {exc!r}") from exc
        except DependencyError:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the client; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aiter__(self) -> AsyncIterator[AggregateBar]:
        """New bars as they appear; iteration ends when a poll fails."""
        if self._client is None:
            raise DependencyError("alphavantage", "feed is not connected", "await feed.connect()")
        while self._client is not None:
            for bar in self._pending:
                self.last_start = max(self.last_start, bar.start_ms)
                yield bar
            self._pending = []
            await asyncio.sleep(self.poll_s)
            try:
                self._pending = await self._fetch()
            except (httpx.HTTPError, DependencyError) as exc:
                self.closed_reason = repr(exc)
                return
