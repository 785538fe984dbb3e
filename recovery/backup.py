"""``tickcast backup``: take each component's backup into a new directory, manifest last.

The backup is written into ``<DIR>.partial`` and renamed to ``DIR`` once its manifest is
written, so ``DIR`` either holds a complete backup or does not exist. Components are taken
in :data:`recovery.manifest.COMPONENTS` order: Kafka first (group offsets, then records), so
ClickHouse and Redis are never older than the offsets that say what they hold.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import structlog

from recovery.clickhouse_backup import FOLDER, backup_clickhouse
from recovery.errors import BackupError
from recovery.kafka_backup import backup_kafka
from recovery.manifest import (
    COMPONENTS,
    ComponentEntry,
    Manifest,
    checksums,
    now_iso,
    write_manifest,
)
from recovery.mlflow_backup import backup_mlflow
from recovery.redis_backup import backup_redis
from tickcast.config import Settings

log = structlog.get_logger(__name__)

BACKUPS: dict[str, tuple[Callable[[Settings, Path], dict[str, Any]], str]] = {
    "kafka": (backup_kafka, "kafka"),
    "clickhouse": (backup_clickhouse, FOLDER),
    "redis": (backup_redis, "redis"),
    "mlflow": (backup_mlflow, "mlflow"),
}
"""Component → (its backup function, the folder it writes)."""


def parse_components(text: str | None) -> list[str]:
    """``"redis,kafka"`` → the components in backup order; every component when empty."""
    if not text:
        return list(COMPONENTS)
    asked = {part.strip() for part in text.split(",") if part.strip()}
    unknown = asked - set(COMPONENTS)
    if unknown:
        raise BackupError(f"unknown components {sorted(unknown)}; choose from {list(COMPONENTS)}")
    return [c for c in COMPONENTS if c in asked]


def _tickcast_version() -> str:
    try:
        return version("tickcast")
    except PackageNotFoundError:
        return "unknown"


def run_backup(settings: Settings, target: Path, components: Sequence[str]) -> Manifest:
    """Back up ``components`` into ``target`` (which must not exist yet)."""
    if target.exists():
        raise BackupError(f"{target} exists: a backup goes into a new directory")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    entries: dict[str, ComponentEntry] = {}
    try:
        for name in components:
            began = time.perf_counter()
            take, folder = BACKUPS[name]
            try:
                info = take(settings, partial)
            except (OSError, sqlite3.Error) as exc:
                raise BackupError(f"{name}: {exc}") from exc
            entries[name] = ComponentEntry(
                files=checksums(partial, partial / folder),
                info=info,
                seconds=round(time.perf_counter() - began, 3),
            )
            log.info("component backed up", component=name, **info)
        manifest = Manifest(
            created_at=now_iso(),
            tickcast_version=_tickcast_version(),
            source={
                "topic_prefix": settings.topic_prefix,
                "consumer_group": settings.consumer_group,
                "redis_key_prefix": settings.redis_key_prefix,
                "clickhouse_database": settings.clickhouse_database,
            },
            components=entries,
        )
        write_manifest(partial, manifest)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest
