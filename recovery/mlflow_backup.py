"""MLflow: the sqlite tracking store (SQLite's online backup API) and the artifact folder.

The copy of the store is consistent while MLflow writes to it. Runs, experiments and model
versions record absolute artifact locations, so a restore under another artifact root
rewrites them (every text column, the old root replaced by the new one). A tracking server
(``http(s)://``) is backed up with the tools of its own database and artifact store.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from recovery.errors import BackupError
from tickcast.config import Settings

STORE = "mlflow/mlflow.db"
ARTIFACTS = "mlflow/artifacts"


def _store_path(settings: Settings) -> Path:
    uri = settings.mlflow_uri
    if urlparse(uri).scheme != "sqlite":
        raise BackupError(
            f"mlflow: {settings.mlflow_uri} is not a sqlite store; back up a tracking server "
            "with its database's and artifact store's own tools"
        )
    return Path(uri.removeprefix("sqlite:///")).resolve()


def _artifact_root(settings: Settings) -> Path:
    root = settings.mlflow_artifacts
    if "://" in root and not root.startswith("file://"):
        raise BackupError(f"mlflow: artifact root {root} is not a local folder")
    return Path(root.removeprefix("file://")).resolve()


def backup_mlflow(settings: Settings, root: Path) -> dict[str, Any]:
    """Copy the store (online backup) and the artifact folder into ``root/mlflow``."""
    store, artifacts = _store_path(settings), _artifact_root(settings)
    if not store.is_file():
        raise BackupError(f"mlflow: no tracking store at {store}")
    target = root / STORE
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        versions = copy.execute("SELECT count(*) FROM model_versions").fetchone()[0]
    finally:
        copy.close()
        source.close()
    if artifacts.is_dir():
        shutil.copytree(artifacts, root / ARTIFACTS)
    return {"artifact_root": str(artifacts), "model_versions": int(versions)}


def mlflow_problems(settings: Settings) -> list[str]:
    """Why MLflow is not an empty restore target (a store with runs or models), if it is not."""
    try:
        store = _store_path(settings)
    except BackupError as exc:
        return [str(exc)]
    if not store.exists():
        return []
    db = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        used = [
            t
            for t in ("runs", "registered_models")
            if t in tables and db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        ]
    finally:
        db.close()
    return [f"mlflow: the store {store} already holds {', '.join(used)}"] if used else []


def restore_mlflow(settings: Settings, root: Path, source_root: str) -> dict[str, Any]:
    """Put the store and artifacts in place, pointing the store at this artifact root."""
    store, artifacts = _store_path(settings), _artifact_root(settings)
    store.parent.mkdir(parents=True, exist_ok=True)
    backup = sqlite3.connect(f"{(root / STORE).resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(store)
    try:
        backup.backup(target)
        rewritten = _rebase_artifacts(target, source_root, str(artifacts))
    finally:
        target.close()
        backup.close()
    if (root / ARTIFACTS).is_dir():
        shutil.copytree(root / ARTIFACTS, artifacts, dirs_exist_ok=True)
    return {"artifact_root": str(artifacts), "locations_rewritten": rewritten}


def _rebase_artifacts(db: sqlite3.Connection, old: str, new: str) -> int:
    """Replace the old artifact root by the new one in every text column; rows changed."""
    if old == new:
        return 0
    changed = 0
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for _, column, kind, *_ in db.execute(f"PRAGMA table_info({table})").fetchall():
            if "CHAR" in kind.upper() or "TEXT" in kind.upper():
                cursor = db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )
                changed += cursor.rowcount
    db.commit()
    return changed
