"""The manifest of a backup: what it holds, when it was taken, and a checksum per file.

A backup is a directory: one sub-directory per component and ``manifest.json``, written
last (a directory without one is an interrupted backup). :func:`verify` re-hashes every
file before a restore touches anything.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from recovery.errors import BackupError

FORMAT = 1
MANIFEST = "manifest.json"
COMPONENTS = ("kafka", "clickhouse", "redis", "mlflow")
"""Every component, in the order a backup takes them (see docs/operations.md)."""


class ComponentEntry(BaseModel):
    """One component of a backup: its files (path relative to the backup → sha256), facts."""

    files: dict[str, str]
    info: dict[str, Any]
    seconds: float


class Manifest(BaseModel):
    """What ``manifest.json`` holds."""

    format: int = FORMAT
    created_at: str
    tickcast_version: str
    source: dict[str, str]
    """The namespace backed up (topic prefix, consumer group, key prefix, database)."""
    components: dict[str, ComponentEntry]


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checksums(root: Path, folder: Path) -> dict[str, str]:
    """Every file under ``folder``, keyed by its path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically (a temporary file renamed into place)."""
    temporary = root / f"{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest.model_dump(), indent=2, sort_keys=True))
    temporary.replace(root / MANIFEST)


def read_manifest(root: Path) -> Manifest:
    """The manifest of the backup at ``root``; BackupError when it is missing or invalid."""
    path = root / MANIFEST
    if not root.is_dir():
        raise BackupError(f"no backup at {root}: not a directory")
    if not path.is_file():
        raise BackupError(f"{root} is not a complete backup: {MANIFEST} is missing")
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BackupError(f"{path} is not a valid manifest: {exc.errors()[0]['msg']}") from None
    if manifest.format != FORMAT:
        raise BackupError(f"{path} has format {manifest.format}; this tickcast reads {FORMAT}")
    unknown = set(manifest.components) - set(COMPONENTS)
    if unknown:
        raise BackupError(f"{path} names unknown components {sorted(unknown)}")
    return manifest


def verify(root: Path, manifest: Manifest) -> list[str]:
    """Every file the manifest lists that is missing or whose checksum differs."""
    problems = []
    for name, entry in manifest.components.items():
        for relative, digest in entry.files.items():
            path = root / relative
            if not path.is_file():
                problems.append(f"{name}: {relative} is missing")
            elif sha256(path) != digest:
                problems.append(f"{name}: {relative} does not match its checksum")
    return problems
