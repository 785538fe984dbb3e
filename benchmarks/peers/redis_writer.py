"""The peers' Redis writes: the worker's keys, values and single command, synchronously.

One call per batch the framework hands its sink: each symbol's latest feature blob under
``<prefix>features:<SYMBOL>`` with the worker's TTL, by the same Lua script as
:meth:`sinks.redis_table.RedisTable.write_many` (one round trip, ~1.6 µs per key), and the
same notice on the updates channel.
"""

from __future__ import annotations

import orjson
import redis

from sinks import redis_keys
from sinks.redis_table import _SET_MANY  # the worker's own script: identical Redis work


class BlobWriter:
    """Write feature blobs (symbol → bytes) in one command per batch."""

    def __init__(self, url: str, prefix: str, ttl_s: int) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.channel = redis_keys.updates_channel(prefix)
        self.script = self.client.register_script(_SET_MANY)

    def write(self, blobs: dict[str, bytes]) -> None:
        """SET every blob with the TTL and publish the symbols, atomically."""
        if not blobs:
            return
        keys = [redis_keys.feature_key(self.prefix, s) for s in blobs]
        notice = orjson.dumps({"symbols": sorted(blobs)})
        self.script(keys=keys, args=[self.ttl_s, self.channel, notice, *blobs.values()])
