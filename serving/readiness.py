"""Readiness checks of the API's dependencies beyond Redis: Kafka, ClickHouse and MLflow.

The checks (``streams.kafka_admin.check_broker``, ``sinks.clickhouse.check`` on a client from
``sinks.read_endpoint.open_reader``, ``training.mlflow_store.check``) block, so each runs in a
worker thread. :class:`CachedCheck` keeps a result ``ttl_s`` seconds and lets one run at a
time: a ``/readyz`` polled every second does not pile up threads, and a slow check that
outlives the caller's timeout still lands its result for the next call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.health import Health

#: Dependencies whose failure makes the API not ready (503); the others make it degraded.
REQUIRED = frozenset({"redis"})


class CachedCheck:
    """An async health check around a blocking ``Health``-returning function."""

    def __init__(
        self, check: Callable[[], Health], *, ttl_s: float = 5.0, failed_ttl_s: float = 1.0
    ) -> None:
        self._check = check
        self.ttl_s = ttl_s
        self.failed_ttl_s = failed_ttl_s
        self._result: tuple[float, Health] | None = None
        self._task: asyncio.Task[Health] | None = None

    async def _run(self) -> Health:
        health = await asyncio.to_thread(self._check)
        self._result = (time.monotonic(), health)
        return health

    async def __call__(self) -> bool:
        """True when the dependency answers; raises DependencyError with its detail if not."""
        cached = self._result
        if cached is not None:
            ttl = self.ttl_s if cached[1].ok else self.failed_ttl_s
            if time.monotonic() - cached[0] < ttl:
                return _verdict(cached[1])
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return _verdict(await asyncio.shield(self._task))


def _verdict(health: Health) -> bool:
    if not health.ok:  # DependencyError redacts: /readyz shows this detail to anyone
        raise DependencyError(health.component, health.detail)
    return True


def clickhouse_health(settings: Settings) -> Health:
    """ClickHouse as the API reads it: through ``sinks.read_endpoint.open_reader``."""
    from sinks.clickhouse import check
    from sinks.read_endpoint import open_reader

    started = time.perf_counter()
    try:
        client = open_reader(settings)
    except DependencyError as exc:
        return Health("clickhouse", False, str(exc)[:300], exc.hint, time.perf_counter() - started)
    try:
        return check(settings, client)
    finally:
        client.close()


def default_checks(settings: Settings) -> dict[str, Callable[[], object]]:
    """``{"kafka", "clickhouse", "mlflow"}`` checks for ``Clients.health_checks``."""
    from streams.kafka_admin import check_broker
    from training import mlflow_store

    return {
        "kafka": CachedCheck(lambda: check_broker(settings, timeout=2.0)),
        "clickhouse": CachedCheck(lambda: clickhouse_health(settings)),
        "mlflow": CachedCheck(lambda: mlflow_store.check(settings, timeout=2.5)),
    }
