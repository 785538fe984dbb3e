"""Where the API reads the latest prediction and features of a symbol.

:class:`LatestStore` is the seam: :class:`serving.redis_store.RedisLatestStore` reads the
worker's Redis layout (the default); the in-memory one here is for tests. :class:`GuardedStore`
wraps any store with a timeout and a circuit breaker so a dead backend costs callers a bounded
wait, then nothing.

Record contract (what a store returns; times are epoch milliseconds, exchange event time):

* prediction: ``{"symbol", "event_time", "model", "version", "role", "value"}``, optionally
  ``"updated_at"`` (when written), ``"expected_return"``, ``"horizon"`` (bars),
  ``"horizon_s"``, ``"feature_event_time"``, ``"correlation_id"``, ``"read_at"`` (when the
  store read it from its backend; older than now when served from a cache).
* features: ``{"event_time", "features": {name: float | None}}``, optionally ``"updated_at"``,
  ``"feature_set_version"``, ``"read_at"``, and ``"values"`` (a list, when the names of the
  writer's feature set are unknown to this build: ``features`` is then empty).

Roles: ``get_prediction(symbol, role="challenger")`` is the challenger's latest prediction
(written by the worker when a challenger scores), used for the A/B challenger arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from serving.circuit import CircuitBreaker

Record = dict[str, Any]


@runtime_checkable
class LatestStore(Protocol):
    """Read access to the serving copy of the latest per-symbol state."""

    async def get_prediction(self, symbol: str, role: str = "champion") -> Record | None:
        """The latest prediction of ``symbol`` by the ``role`` model, or None."""
        ...

    async def get_features(self, symbols: Sequence[str]) -> dict[str, Record | None]:
        """The latest features of each symbol (None for unknown symbols), in one round trip."""
        ...


class InMemoryLatestStore:
    """A dict-backed :class:`LatestStore` for unit tests."""

    def __init__(self) -> None:
        self.predictions: dict[str, Record] = {}
        self.challenger_predictions: dict[str, Record] = {}
        self.features: dict[str, Record] = {}
        self.calls = 0

    def put_prediction(self, symbol: str, record: Record, role: str = "champion") -> None:
        """Set the latest prediction of ``symbol`` by the ``role`` model."""
        target = self.predictions if role == "champion" else self.challenger_predictions
        target[symbol] = record

    def put_features(self, symbol: str, record: Record) -> None:
        """Set the latest features of ``symbol``."""
        self.features[symbol] = record

    async def get_prediction(self, symbol: str, role: str = "champion") -> Record | None:
        """The stored prediction, or None."""
        self.calls += 1
        source = self.predictions if role == "champion" else self.challenger_predictions
        return source.get(symbol)

    async def get_features(self, symbols: Sequence[str]) -> dict[str, Record | None]:
        """The stored features of each symbol, or None."""
        self.calls += 1
        return {symbol: self.features.get(symbol) for symbol in symbols}


class GuardedStore:
    """A :class:`LatestStore` whose calls go through a timeout and a circuit breaker."""

    def __init__(self, inner: LatestStore, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    async def get_prediction(self, symbol: str, role: str = "champion") -> Record | None:
        """See :meth:`LatestStore.get_prediction`; raises ``DependencyUnavailable``."""
        return await self.breaker.call(self.inner.get_prediction, symbol, role)

    async def get_features(self, symbols: Sequence[str]) -> dict[str, Record | None]:
        """See :meth:`LatestStore.get_features`; raises ``DependencyUnavailable``."""
        return await self.breaker.call(self.inner.get_features, symbols)
