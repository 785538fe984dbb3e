"""``tickcast topics`` (the Kafka topics of ``infra/kafka/topics.yaml``) and ``tickcast feed``
(a live vendor feed published to ``ticks``, streams/feed.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from tickcast.command import settings

topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics from infra/kafka/topics.yaml.")
console = Console()


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics and align their configs (idempotent)."""
    from streams.topics import apply_topics

    changed = apply_topics(settings())
    for line in changed:
        console.print(f"  {line}")
    console.print(f"{len(changed)} topic(s) created or changed")


feed_app = typer.Typer(
    no_args_is_help=True, help="Publish a live vendor feed to ticks (reconnects with backoff)."
)


def _run_feed(make: Any, source: str, max_ticks: int | None) -> None:
    import asyncio
    import signal

    from streams.feed import run_feed

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_feed(settings(service=True), make, source, stop, max_ticks=max_ticks)

    stats = asyncio.run(main())
    refused = ", ".join(f"{reason} {n}" for reason, n in sorted(stats.refused.items()))
    console.print(
        f"published {stats.published} tick(s); refused {sum(stats.refused.values())}"
        f"{f' ({refused})' if refused else ''}; {stats.parse_issues} unreadable message(s); "
        f"{stats.connections} connection(s), {stats.failed_connects} failed"
    )


@feed_app.command("polygon")
def feed_polygon(
    subscribe: Annotated[str, typer.Option(help="Channels, e.g. 'T.AAPL,Q.AAPL,AM.*'.")] = "T.*",
    url: Annotated[str, typer.Option(help="Websocket URL.")] = "wss://socket.polygon.io/stocks",
    max_ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
) -> None:
    """Polygon.io stocks websocket → ticks (key: TICKCAST_FEED_API_KEY)."""
    from streams.vendor import PolygonFeed

    key = settings().feed_api_key.get_secret_value()
    channels = [c.strip() for c in subscribe.split(",") if c.strip()]
    _run_feed(lambda: PolygonFeed(key, channels, url=url), "feed:polygon", max_ticks)


@feed_app.command("alphavantage")
def feed_alphavantage(
    symbol: Annotated[str, typer.Option(help="Symbol to poll.")],
    interval: Annotated[str, typer.Option(help="1min, 5min, 15min, 30min or 60min.")] = "1min",
    poll_s: Annotated[float, typer.Option(help="Seconds between polls.")] = 60.0,
    url: Annotated[str, typer.Option(help="API URL.")] = "https://www.alphavantage.co/query",
    max_ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
) -> None:
    """Alpha Vantage TIME_SERIES_INTRADAY bars → ticks (key: TICKCAST_FEED_API_KEY)."""
    from streams.alphavantage import AlphaVantageFeed

    key = settings().feed_api_key.get_secret_value()

    def make() -> AlphaVantageFeed:
        return AlphaVantageFeed(key, symbol, interval=interval, url=url, poll_s=poll_s)

    _run_feed(make, "feed:alphavantage", max_ticks)
