"""The default :class:`~serving.store.LatestStore`: the stream worker's Redis layout, cached.

Keys: :mod:`sinks.redis_keys`, the layout the worker writes (``features:<SYMBOL>``,
``prediction:<SYMBOL>`` and ``prediction:<SYMBOL>:challenger`` under the prefix).
Prediction JSON: :class:`schemas.serving.ServingPrediction`, the Prediction record's fields
under the names of :data:`schemas.serving.SERVING_FROM_PREDICTION`.

Blobs are binary, so this store has its own ``decode_responses=False`` client. Reads go
through a small in-process cache (:class:`TtlCache`): an entry is reused for ``ttl_s``
(``TICKCAST_API_CACHE_TTL_S``, default 0.25 s), misses of the same key share one Redis call,
a batch reads its misses with one ``MGET``, and a hot key whose entry just expired is served
from the expired entry while one background read refreshes it (stale-while-revalidate, for at
most ``4 × ttl_s``). So an answer reflects Redis as it was at most ``5 × ttl_s`` ago (about
``ttl_s`` in steady traffic); each record says when it was read (``read_at``), and its age
(``age_s``) is always computed from its exchange event time at answer time, never cached.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from serving.redis_pool import redis_client
from serving.store import Record
from sinks import redis_keys
from sinks.feature_blob import FeatureBlob, decode
from tickcast.config import Settings

log = structlog.get_logger("serving.redis_store")
_MISSING = object()


def _export_hit_rate(hits: int, lookups: int) -> None:
    """``feature_cache_hit_rate``: share of feature look-ups served from the in-process cache."""
    from tickcast.metrics import get_metrics

    if lookups:
        get_metrics().feature_cache_hit_rate.set(hits / lookups)


def stream_names(settings: Settings) -> Callable[[str], tuple[str, ...] | None]:
    """Column names by feature-set version: every named set (``+side`` ones under
    ``settings``' ``TICKCAST_SIDE_*``), whichever the worker computes (memoised per version)."""
    from sidestreams.feature_sets import names_for_version

    memo: dict[str, tuple[str, ...] | None] = {}

    def names_of(version: str) -> tuple[str, ...] | None:
        if version not in memo and len(memo) < 64:
            memo[version] = names_for_version(version, settings)
        return memo.get(version)

    return names_of


class TtlCache:
    """Values kept ``ttl_s`` seconds (monotonic clock), at most ``max_entries`` of them.

    >>> now = [0.0]
    >>> cache = TtlCache(1.0, clock=lambda: now[0])
    >>> cache.put("k", 1); cache.get("k")
    1
    >>> now[0] = 1.5; cache.get("k") is None
    True
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 100_000,
        max_stale_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_stale_s = 4 * ttl_s if max_stale_s is None else max_stale_s
        self._tasks: set[asyncio.Task[None]] = set()
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str, default: Any = None) -> Any:
        """The live value of ``key``, or ``default``."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            self.hits += 1
            return entry[1]
        self.misses += 1
        return default

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` for ``ttl_s`` (no-op when the TTL is 0)."""
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = self._clock()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (self._clock() + self.ttl_s, value)

    def invalidate(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def stale(self, key: str) -> Any:
        """The value of ``key`` even if expired, while within ``max_stale_s`` (else missing)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] + self.max_stale_s > self._clock():
            return entry[1]
        return _MISSING

    def _claim(self, key: str) -> asyncio.Future[Any]:
        """Register the one in-flight load of ``key`` (synchronously, so no second starts)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        return future

    async def _load(
        self, key: str, load: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]
    ) -> Any:
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            self.put(key, value)
            future.set_result(value)
            return value
        finally:
            self._inflight.pop(key, None)

    def _refresh_in_background(self, key: str, load: Callable[[], Awaitable[Any]]) -> None:
        future = self._claim(key)

        async def refresh() -> None:
            try:
                await self._load(key, load, future)
            except Exception as exc:  # the stale value stays until max_stale_s; logged
                log.warning("cache_refresh_failed", key=key, error=type(exc).__name__)

        task = asyncio.get_running_loop().create_task(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def single_flight(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or ``load()`` once for all concurrent callers of ``key``.

        An expired value younger than ``max_stale_s`` is returned at once while one
        background ``load()`` refreshes it (stale-while-revalidate): a hot key never makes
        callers wait on Redis.
        """
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value
        pending = self._inflight.get(key)
        stale = self.stale(key)
        if stale is not _MISSING:
            if pending is None:
                self._refresh_in_background(key, load)
            return stale
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, load, self._claim(key))

    @property
    def hit_rate(self) -> float:
        """Share of look-ups served from the cache (NaN before the first)."""
        total = self.hits + self.misses
        return self.hits / total if total else math.nan


def blob_client(settings: Settings) -> Redis:
    """A bytes (``decode_responses=False``) client that fails fast, on a bounded pool."""
    return redis_client(settings, decode_responses=False)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def prediction_record(payload: bytes | str | None, *, read_at: int) -> Record | None:
    """The store record of the worker's prediction JSON (``{}`` when it is not JSON)."""
    if payload is None:
        return None
    try:
        record = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.warning("unreadable_prediction", reason="not JSON")
        return {}
    if not isinstance(record, dict):
        return {}
    role = record.get("role")
    if isinstance(role, str):
        record["role"] = role.lower()
    record["read_at"] = read_at
    return record


def features_record(
    payload: bytes | None,
    *,
    names: Sequence[str],
    version: str,
    read_at: int,
    names_of: Callable[[str], Sequence[str] | None] | None = None,
) -> Record | None:
    """The store record of a feature blob, named when its feature set is ``version`` (else
    the one ``names_of`` finds for the blob's version: the set the worker computes)."""
    if payload is None:
        return None
    try:
        blob: FeatureBlob = decode(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("unreadable_feature_blob", reason=str(exc))
        return {}
    values = [_finite_or_none(v) for v in blob.values]
    record: Record = {
        "event_time": blob.event_ts_ms,
        "updated_at": blob.updated_ms,
        "feature_set_version": blob.feature_set_version,
        "read_at": read_at,
    }
    if blob.feature_set_version != version and names_of is not None:
        found = names_of(blob.feature_set_version)
        if found is not None:
            names, version = found, blob.feature_set_version
    if blob.feature_set_version == version and len(names) == len(values):
        record["features"] = dict(zip(names, values, strict=True))
    else:
        record["features"] = {}
        record["values"] = values
    return record


class RedisLatestStore:
    """:class:`~serving.store.LatestStore` over the worker's keys (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        ttl_s: float = 0.25,
        feature_names: Sequence[str] | None = None,
        feature_set_version: str | None = None,
        clock: Callable[[], float] = time.time,
        owned: bool = False,
        on_feature_lookups: Callable[[int, int], None] | None = None,
        names_of: Callable[[str], Sequence[str] | None] | None = None,
    ) -> None:
        self._redis: Any = redis
        self._on_feature_lookups = on_feature_lookups
        self.feature_lookups = 0
        self.feature_hits = 0
        self.prefix = prefix
        self.cache = TtlCache(ttl_s)
        if feature_names is None or feature_set_version is None:
            from indicators.feature_set import FeatureSet

            default = FeatureSet.default()
            feature_names, feature_set_version = default.names, default.version
        self.feature_names = tuple(feature_names)
        self.feature_set_version = feature_set_version
        self.names_of = names_of
        """Column names of another feature-set version (the set the worker computes)."""
        self._clock = clock
        self._owned = owned

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisLatestStore:
        """A store on its own bytes client (closed by :meth:`close`)."""
        return cls(
            blob_client(settings),
            prefix=settings.redis_key_prefix,
            ttl_s=settings.api_cache_ttl_s,
            owned=True,
            on_feature_lookups=_export_hit_rate,
            names_of=stream_names(settings),
        )

    def prediction_key(self, symbol: str, role: str = "champion") -> str:
        """The worker's key of a symbol's latest prediction by ``role``."""
        suffix = redis_keys.CHAMPION if role == "champion" else f":{role}"
        return redis_keys.prediction_key(self.prefix, symbol, suffix)

    def feature_key(self, symbol: str) -> str:
        """The worker's key of a symbol's feature blob."""
        return redis_keys.feature_key(self.prefix, symbol)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def get_prediction(self, symbol: str, role: str = "champion") -> Record | None:
        """The latest prediction of ``symbol`` by ``role`` (cached up to ``ttl_s``)."""
        key = self.prediction_key(symbol, role)

        async def load() -> Record | None:
            payload = await self._redis.get(key)
            return prediction_record(payload, read_at=self._now_ms())

        result: Record | None = await self.cache.single_flight(key, load)
        return result

    async def get_features(self, symbols: Sequence[str]) -> dict[str, Record | None]:
        """The latest features of each symbol: cached ones, the rest in one ``MGET``."""
        out: dict[str, Record | None] = {}
        missing: list[str] = []
        for symbol in symbols:
            value = self.cache.get(self.feature_key(symbol), _MISSING)
            if value is _MISSING:
                missing.append(symbol)
            else:
                out[symbol] = value
        if missing:
            payloads = await self._redis.mget([self.feature_key(s) for s in missing])
            read_at = self._now_ms()
            for symbol, payload in zip(missing, payloads, strict=True):
                record = features_record(
                    payload if isinstance(payload, bytes) else None,
                    names=self.feature_names,
                    version=self.feature_set_version,
                    read_at=read_at,
                    names_of=self.names_of,
                )
                self.cache.put(self.feature_key(symbol), record)
                out[symbol] = record
        self.feature_lookups += len(symbols)
        self.feature_hits += len(symbols) - len(missing)
        if self._on_feature_lookups is not None:
            self._on_feature_lookups(self.feature_hits, self.feature_lookups)
        return out

    async def read_now(self, symbol: str) -> tuple[Record | None, Record | None]:
        """The champion's prediction and the features of ``symbol`` read from Redis now, in
        one ``MGET``, past the cache (the console's live channel: the worker just said it
        wrote them, so a cached copy would be the one before)."""
        payloads = await self._redis.mget([self.prediction_key(symbol), self.feature_key(symbol)])
        read_at = self._now_ms()
        features = payloads[1]
        return (
            prediction_record(payloads[0], read_at=read_at),
            features_record(
                features if isinstance(features, bytes) else None,
                names=self.feature_names,
                version=self.feature_set_version,
                read_at=read_at,
                names_of=self.names_of,
            ),
        )

    async def ping(self) -> bool:
        """Whether Redis answers (for ``/readyz``)."""
        return bool(await self._redis.ping())

    async def close(self) -> None:
        """Close the client when this store opened it."""
        if self._owned:
            await self._redis.aclose()
