"""The I/O clients the API uses, built in the lifespan (never at import) or passed in by tests.

``health_checks`` maps a dependency name to an async callable that raises (or returns False)
when that dependency is unusable; ``/readyz`` runs them all. Redis is always checked.
``history``, ``models`` and ``publisher`` are seams: left ``None``, the runtime uses the real
ClickHouse reader, MLflow registry and Kafka publisher (each connects on first use).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from serving.history import HistoryReader
from serving.models import EventPublisher, ModelRegistry
from serving.redis_pool import redis_client
from serving.store import LatestStore, Record
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.metrics import Metrics

HealthCheck = Callable[[], Awaitable[object]]
StoreFactory = Callable[[Redis, Settings], LatestStore]


@dataclass
class Clients:
    """Everything the API talks to. ``redis`` decodes responses to ``str``."""

    redis: Redis
    store: LatestStore
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    registry: CollectorRegistry | None = None
    """What ``/metrics`` exposes (default: the metrics' registry)."""
    clock: Callable[[], float] = time.time
    owned: bool = False
    """True when the lifespan built these clients and so closes them."""
    metrics: Metrics | None = None
    """Where HTTP latency and A/B counts go (default: ``tickcast.metrics.get_metrics()``)."""
    history: HistoryReader | None = None
    models: ModelRegistry | None = None
    publisher: EventPublisher | None = None


class UnconfiguredStore:
    """A store whose every read is a 503 (for a deployment without Redis features)."""

    async def get_prediction(self, symbol: str, role: str = "champion") -> Record | None:
        """Always raises :class:`DependencyError`."""
        raise DependencyError("store", "no LatestStore configured")

    async def get_features(self, symbols: Sequence[str]) -> dict[str, Record | None]:
        """Always raises :class:`DependencyError`."""
        raise DependencyError("store", "no LatestStore configured")


def default_store(redis: Redis, settings: Settings) -> LatestStore:
    """The worker's Redis layout, cached (:class:`serving.redis_store.RedisLatestStore`)."""
    from serving.redis_store import RedisLatestStore

    return RedisLatestStore.from_settings(settings)


def build_clients(
    settings: Settings, *, store_factory: StoreFactory | None = None, checks: bool = True
) -> Clients:
    """Clients for ``settings``; no connection is made until first use."""
    from serving.readiness import default_checks

    redis = redis_client(settings)
    store = (store_factory or default_store)(redis, settings)
    health: dict[str, Any] = default_checks(settings) if checks else {}
    return Clients(redis=redis, store=store, health_checks=health, owned=True)


async def close_clients(clients: Clients) -> None:
    """Close what :func:`build_clients` opened."""
    close = getattr(clients.store, "close", None)
    if close is not None:
        await close()
    await clients.redis.aclose()
