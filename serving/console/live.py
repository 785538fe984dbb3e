"""Live updates for the console: one Redis subscription per API process, fanned out to the
browsers that watch a symbol.

The worker publishes, once per micro-batch and in the same Redis round trip as its writes,
the symbols it just updated (:data:`sinks.redis_keys` ``updates`` channel). A browser's
server-sent-event stream waits on a small queue here; when its symbol is named, the page's
handler reads the latest prediction and features from the store and sends them. A browser
that falls behind loses intermediate notices, never the latest state (each notice means
"read again"), and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("serving.console.live")

#: Notices a watcher may have pending; beyond it the oldest is dropped (each means "read again").
QUEUE_SIZE = 4
#: Seconds between attempts to subscribe again after Redis went away.
RETRY_S = 1.0


class LiveFeed:
    """Who watches which symbol, and the one subscription that wakes them."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self.watchers: dict[str, set[asyncio.Queue[str]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def watch(self, symbol: str) -> asyncio.Queue[str]:
        """A queue that receives ``symbol`` each time the worker updates it."""
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.watchers.setdefault(symbol, set()).add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unwatch(self, symbol: str, queue: asyncio.Queue[str]) -> None:
        """Stop delivering to ``queue``."""
        queues = self.watchers.get(symbol)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.watchers[symbol]

    def deliver(self, payload: bytes | str) -> int:
        """Wake the watchers of the symbols named in one notice; returns how many were woken."""
        try:
            symbols = json.loads(payload)["symbols"]
        except (ValueError, KeyError, TypeError):
            log.warning("live_notice_unreadable")
            return 0
        woken = 0
        for symbol in symbols if isinstance(symbols, list) else []:
            for queue in self.watchers.get(str(symbol), ()):
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(str(symbol))
                woken += 1
        return woken

    async def _run(self) -> None:
        while self.watchers:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                while self.watchers:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.deliver(message["data"])
            except (RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("live_subscription_lost", error=type(exc).__name__)
                await asyncio.sleep(RETRY_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
        self.connected.clear()

    async def close(self) -> None:
        """Stop the subscription (application shutdown)."""
        self.watchers.clear()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
