"""Redis as the serving copy: latest feature vector and latest prediction per symbol.

Keys: see :mod:`sinks.redis_keys` (``features:``, ``prediction:`` and ``view:`` under
``TICKCAST_REDIS_KEY_PREFIX``), the layout the API reads too.

Writes are one command per micro-batch (:meth:`RedisTable.write_many`: features and
predictions together, one round trip); reads use MGET.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
import redis.asyncio as aioredis

from sinks import redis_keys
from sinks.feature_blob import FeatureBlob, decode

#: SET every KEYS[i] to ARGV[i + 3] with the TTL ARGV[1] (seconds), then PUBLISH ARGV[3] on
#: the channel ARGV[2] (the console's live pages listen), in one command.
_SET_MANY = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 3], 'EX', ttl)
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return #KEYS
"""


class RedisTable:
    """Thin async adapter; the connection is opened by the caller (see :meth:`from_url`)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.updates_channel = redis_keys.updates_channel(prefix)
        self._set_many = client.register_script(_SET_MANY)

    @classmethod
    def from_url(cls, url: str, prefix: str, ttl_s: int) -> RedisTable:
        """A table on a new connection pool for ``url``."""
        return cls(aioredis.Redis.from_url(url, socket_timeout=5), prefix, ttl_s)

    def feature_key(self, symbol: str) -> str:
        """The key of a symbol's feature vector."""
        return redis_keys.feature_key(self.prefix, symbol)

    def prediction_key(self, symbol: str) -> str:
        """The key of a symbol's latest champion prediction."""
        return redis_keys.prediction_key(self.prefix, symbol)

    def view_key(self, partition: int) -> str:
        """The mark saying partition ``partition``'s symbols are in this Redis."""
        return redis_keys.view_key(self.prefix, partition)

    async def missing_view_marks(self, partitions: Sequence[int]) -> list[int]:
        """The partitions among ``partitions`` whose view mark is absent."""
        if not partitions:
            return []
        found = await self.client.mget([self.view_key(p) for p in partitions])
        return [p for p, mark in zip(partitions, found, strict=True) if mark is None]

    async def set_view_marks(self, partitions: Sequence[int]) -> None:
        """Mark ``partitions`` as written (no TTL: only a lost Redis loses them)."""
        if partitions:
            await self.client.mset({self.view_key(p): b"1" for p in partitions})

    async def drop_view_marks(self) -> int:
        """Delete every view mark of this prefix: each owning worker rebuilds its symbols."""
        pattern = redis_keys.view_pattern(self.prefix)
        keys = [key async for key in self.client.scan_iter(match=pattern)]
        return int(await self.client.delete(*keys)) if keys else 0

    async def write_features(self, blobs: Mapping[str, bytes]) -> None:
        """Write each symbol's latest blob in one pipelined round trip."""
        if not blobs:
            return
        pipe = self.client.pipeline(transaction=False)
        for symbol, blob in blobs.items():
            pipe.set(self.feature_key(symbol), blob, ex=self.ttl_s)
        await pipe.execute()

    async def write_predictions(
        self, predictions: Mapping[str, Mapping[str, object]], suffix: str = ""
    ) -> None:
        """Write each symbol's latest prediction (JSON) in one round trip.

        ``suffix`` is :data:`sinks.redis_keys.CHAMPION` or :data:`~sinks.redis_keys.CHALLENGER`.
        """
        if not predictions:
            return
        pipe = self.client.pipeline(transaction=False)
        for symbol, record in predictions.items():
            pipe.set(
                redis_keys.prediction_key(self.prefix, symbol, suffix),
                orjson.dumps(record),
                ex=self.ttl_s,
            )
        await pipe.execute()

    async def write_many(
        self,
        blobs: Mapping[str, bytes],
        predictions: Mapping[str, Mapping[str, Mapping[str, object]]],
    ) -> None:
        """Feature blobs and predictions (``suffix`` → symbol → JSON) in ONE command.

        Why one script call rather than a pipeline of SETs: redis-py spends about 14 µs of
        client CPU per pipelined command (command objects, one reply parsed per key); the
        worker writes 500-1,500 keys per micro-batch, which was ~12 % of its CPU at 5,000
        ticks/s. One EVALSHA whose arguments hiredis packs costs ~1.6 µs per key; Redis runs
        the SETs (about 1 µs each) atomically, so the serving API waits at most that long.
        Same keys, values and TTL as :meth:`write_features` and :meth:`write_predictions`
        (checked against them on a real server); a single Redis, not a cluster, is assumed.
        The same command publishes the batch's symbols on :func:`sinks.redis_keys.updates_channel`.
        """
        keys: list[str] = []
        values: list[bytes] = []
        symbols = set(blobs)
        for symbol, blob in blobs.items():
            keys.append(self.feature_key(symbol))
            values.append(blob)
        for suffix, records in predictions.items():
            symbols.update(records)
            for symbol, record in records.items():
                keys.append(redis_keys.prediction_key(self.prefix, symbol, suffix))
                values.append(orjson.dumps(record))
        if keys:
            notice = orjson.dumps({"symbols": sorted(symbols)})
            args: list[bytes | int | str] = [self.ttl_s, self.updates_channel, notice, *values]
            await self._set_many(keys=keys, args=args)

    async def read_features(self, symbols: Sequence[str]) -> dict[str, FeatureBlob | None]:
        """Latest feature blobs for symbols (None where absent or unreadable)."""
        if not symbols:
            return {}
        raw = await self.client.mget([self.feature_key(s) for s in symbols])
        out: dict[str, FeatureBlob | None] = {}
        for symbol, payload in zip(symbols, raw, strict=True):
            try:
                out[symbol] = decode(payload) if isinstance(payload, bytes) else None
            except ValueError:
                out[symbol] = None
        return out

    async def read_predictions(self, symbols: Sequence[str]) -> dict[str, dict[str, object] | None]:
        """Latest champion predictions for symbols (None where absent)."""
        if not symbols:
            return {}
        raw = await self.client.mget([self.prediction_key(s) for s in symbols])
        return {s: (orjson.loads(p) if p else None) for s, p in zip(symbols, raw, strict=True)}

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
