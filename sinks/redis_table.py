"""Redis as the serving copy: latest feature vector and latest prediction per symbol.

Keys (``<prefix>`` is ``TICKCAST_REDIS_KEY_PREFIX``)::

    <prefix>features:<SYMBOL>    feature blob (see sinks.feature_blob), TTL feature_ttl_s
    <prefix>prediction:<SYMBOL>  JSON of the champion's latest prediction, same TTL

Writes are one non-transactional pipeline per micro-batch (:meth:`RedisTable.write_many`:
features and predictions together, one round trip); reads use MGET.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
import redis.asyncio as aioredis

from sinks.feature_blob import FeatureBlob, decode


class RedisTable:
    """Thin async adapter; the connection is opened by the caller (see :meth:`from_url`)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, prefix: str, ttl_s: int) -> RedisTable:
        """A table on a new connection pool for ``url``."""
        return cls(aioredis.Redis.from_url(url, socket_timeout=5), prefix, ttl_s)

    def feature_key(self, symbol: str) -> str:
        """The key of a symbol's feature vector."""
        return f"{self.prefix}features:{symbol}"

    def prediction_key(self, symbol: str) -> str:
        """The key of a symbol's latest champion prediction."""
        return f"{self.prefix}prediction:{symbol}"

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

        ``suffix`` ``""`` is the champion's key, ``":challenger"`` the A/B challenger's.
        """
        if not predictions:
            return
        pipe = self.client.pipeline(transaction=False)
        for symbol, record in predictions.items():
            pipe.set(self.prediction_key(symbol) + suffix, orjson.dumps(record), ex=self.ttl_s)
        await pipe.execute()

    async def write_many(
        self,
        blobs: Mapping[str, bytes],
        predictions: Mapping[str, Mapping[str, Mapping[str, object]]],
    ) -> None:
        """Feature blobs and predictions (``suffix`` → symbol → JSON) in ONE round trip.

        Why: the worker wrote them in two or three pipelines per micro-batch; each round trip
        yields to a Redis server that shares the cores, and under load one could take
        5-45 ms while the next batch waited. Same keys, values and TTL as
        :meth:`write_features` and :meth:`write_predictions`.
        """
        if not blobs and not any(predictions.values()):
            return
        pipe = self.client.pipeline(transaction=False)
        for symbol, blob in blobs.items():
            pipe.set(self.feature_key(symbol), blob, ex=self.ttl_s)
        for suffix, records in predictions.items():
            for symbol, record in records.items():
                key = self.prediction_key(symbol) + suffix
                pipe.set(key, orjson.dumps(record), ex=self.ttl_s)
        await pipe.execute()

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
