"""Fakes for the serving seams: history reader, model registry, event publisher.

The fake registry tags versions the way ``training.registry.promote`` does (``role``,
``demoted_reason = "replaced by v<N>: ..."``, ``promoted_at_ms``), so rollback finds its
target as it would in MLflow. The recording publisher encodes each event with the real
ModelEvent Avro codec, so a record that breaks the contract fails the test.
"""

from __future__ import annotations

import itertools
from typing import Any

from serving.history import HistoryQuery
from serving.models import VersionInfo
from sinks.history import Cursor, Page, derive_cursor_key
from streams.codec import get_codec
from tickcast.errors import DependencyError, ModelError


def history_row(symbol: str, ts_ms: int, model: str = "xgb", version: str = "3") -> dict[str, Any]:
    """A row shaped like ``sinks.history.history_page``'s prediction rows."""
    return {
        "symbol": symbol, "ts_ms": ts_ms, "horizon": 5, "model_name": model,
        "model_version": version, "role": "CHAMPION", "prob_up": 0.6, "expected_return": 0.002,
        "feature_set_version": "v1", "correlation_id": f"c{ts_ms}", "run_id": "",
        "produced_at_ms": ts_ms + 3,
    }  # fmt: skip


class FakeHistory:
    """Keyset pagination over an in-memory row list, like ``history_page`` does in SQL, with
    cursors signed and tied to the query the same way."""

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows = rows or []
        self.queries: list[HistoryQuery] = []
        self.down = False
        self.cursor_key = derive_cursor_key("fake-history")

    def page(self, query: HistoryQuery) -> Page:
        self.queries.append(query)
        binding = query.binding()
        after = None
        if query.cursor is not None:
            after = Cursor.decode(query.cursor, self.cursor_key, binding)
        if self.down:
            raise DependencyError("clickhouse", "connection refused")

        def key(row: dict[str, Any]) -> tuple[int, str, str, int]:
            return (row["ts_ms"], row["model_name"], row["model_version"], row["horizon"])

        mine = sorted(
            (
                r
                for r in self.rows
                if r["symbol"] == query.symbol
                and query.start_ms <= r["ts_ms"] < query.end_ms
                and (query.model is None or r["model_name"] == query.model)
            ),
            key=key,
        )
        if after is not None:
            mark = (after.ts_ms, after.model_name, after.model_version, after.horizon)
            mine = [r for r in mine if key(r) > mark]
        if len(mine) <= query.limit:
            return Page(mine, None)
        last = mine[query.limit - 1]
        return Page(mine[: query.limit], Cursor(*key(last)).encode(self.cursor_key, binding))


class FakeRegistry:
    """An in-memory registry of one or more model names."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, VersionInfo]] = {}
        self.down = False
        self._clock = itertools.count(1_700_000_000_000, 1000)

    def register(self, name: str, version: str, role: str) -> None:
        tags = {"role": role}
        if role == "champion":
            tags["promoted_at_ms"] = str(next(self._clock))
        self.versions.setdefault(name, {})[version] = VersionInfo(
            name, version, role, "r" + version, tags
        )

    def _check(self) -> None:
        if self.down:
            raise DependencyError("mlflow", "tracking store unreachable")

    def champion(self, name: str) -> VersionInfo | None:
        self._check()
        return next((v for v in self.versions.get(name, {}).values() if v.role == "champion"), None)

    def challengers(self, name: str) -> list[VersionInfo]:
        self._check()
        found = [v for v in self.versions.get(name, {}).values() if v.role == "challenger"]
        return sorted(found, key=lambda v: -int(v.version))

    def promote(self, name: str, version: str, reason: str) -> None:
        self._check()
        models = self.versions.get(name, {})
        if version not in models:
            raise ModelError(f"RESOURCE_DOES_NOT_EXIST: {name} v{version}")
        old = self.champion(name)
        if old is not None:
            tags = {
                **old.tags,
                "role": "challenger",
                "demoted_reason": f"replaced by v{version}: {reason}",
            }
            models[old.version] = VersionInfo(name, old.version, "challenger", old.run_id, tags)
        new = models[version]
        tags = {**new.tags, "role": "champion", "promoted_at_ms": str(next(self._clock))}
        models[version] = VersionInfo(name, version, "champion", new.run_id, tags)


class RecordingPublisher:
    """Keeps every event after encoding it with the real ModelEvent codec."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.payloads: list[bytes] = []
        self.down = False

    def publish(self, event: dict[str, Any]) -> None:
        payload = get_codec("ModelEvent").encode(event)
        if self.down:
            raise DependencyError("kafka", "broker unreachable")
        self.payloads.append(payload)
        self.events.append(get_codec("ModelEvent").decode(payload))
