"""``tickcast restore``: check everything first, then restore every component of a backup.

Nothing is written before the whole backup has been verified (manifest, every checksum)
and every target has been found empty; a corrupt or incomplete backup, or a stack that
already holds data, is refused with the list of reasons and changes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import structlog

from recovery.clickhouse_backup import clickhouse_problems, restore_clickhouse
from recovery.errors import BackupError
from recovery.kafka_backup import kafka_problems, restore_kafka
from recovery.manifest import Manifest, read_manifest, verify
from recovery.mlflow_backup import mlflow_problems, restore_mlflow
from recovery.redis_backup import redis_problems, restore_redis
from tickcast.config import Settings

log = structlog.get_logger(__name__)

ORDER = ("mlflow", "clickhouse", "redis", "kafka")
"""Restore order: the model registry and history first, the stream's position last."""


def _problems(settings: Settings, root: Path, name: str) -> list[str]:
    if name == "kafka":
        return kafka_problems(settings, root)
    if name == "clickhouse":
        return clickhouse_problems(settings, root)
    if name == "redis":
        return redis_problems(settings)
    return mlflow_problems(settings)


def _restore(settings: Settings, root: Path, name: str, manifest: Manifest) -> dict[str, Any]:
    info = manifest.components[name].info
    if name == "kafka":
        return restore_kafka(settings, root)
    if name == "clickhouse":
        return restore_clickhouse(settings, root, str(info["database"]))
    if name == "redis":
        return restore_redis(settings, root)
    return restore_mlflow(settings, root, str(info["artifact_root"]))


def check_backup(root: Path) -> Manifest:
    """The verified manifest of the backup at ``root``; BackupError listing every problem."""
    manifest = read_manifest(root)
    problems = verify(root, manifest)
    if problems:
        raise BackupError(f"the backup at {root} is damaged: " + "; ".join(problems))
    return manifest


def run_restore(settings: Settings, root: Path) -> dict[str, dict[str, Any]]:
    """Restore every component of the backup at ``root`` into this (empty) deployment."""
    manifest = check_backup(root)
    names = [n for n in ORDER if n in manifest.components]
    problems = [p for n in names for p in _problems(settings, root, n)]
    if problems:
        raise BackupError("restore refused, nothing changed: " + "; ".join(problems))
    done: dict[str, dict[str, Any]] = {}
    for name in names:
        began = time.perf_counter()
        try:
            done[name] = {**_restore(settings, root, name, manifest)}
        except (OSError, sqlite3.Error) as exc:
            raise BackupError(f"{name}: restore failed: {exc}") from exc
        done[name]["seconds"] = round(time.perf_counter() - began, 3)
        log.info("component restored", component=name, **done[name])
    return done
