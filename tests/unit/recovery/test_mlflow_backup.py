"""The MLflow store restored under another artifact root points at the new root only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from recovery.mlflow_backup import ARTIFACTS, STORE, mlflow_problems, restore_mlflow
from tickcast.config import Settings


def test_artifact_locations_follow_the_new_root(tmp_path: Path) -> None:
    old = "/srv/old/mlflow/artifacts"
    backup = tmp_path / "backup"
    (backup / STORE).parent.mkdir(parents=True)
    (backup / ARTIFACTS / "models" / "m-1").mkdir(parents=True)
    (backup / ARTIFACTS / "models" / "m-1" / "model.pkl").write_bytes(b"weights")
    db = sqlite3.connect(backup / STORE)
    db.execute("CREATE TABLE experiments (name VARCHAR(256), artifact_location VARCHAR(256))")
    db.execute("CREATE TABLE runs (run_uuid VARCHAR(32), artifact_uri TEXT, status INTEGER)")
    db.execute("INSERT INTO experiments VALUES ('e', ?)", (f"file://{old}",))
    db.execute("INSERT INTO runs VALUES ('r1', ?, 1)", (f"file://{old}/r1/artifacts",))
    db.execute("INSERT INTO runs VALUES ('r2', 'models:/m-2', 1)")
    db.commit()
    db.close()

    target = tmp_path / "target"
    settings = Settings(
        mlflow_tracking_uri=f"sqlite:///{target / 'mlflow.db'}",
        mlflow_artifact_root=str(target / "artifacts"),
    )
    assert mlflow_problems(settings) == []
    done = restore_mlflow(settings, backup, old)
    assert done["locations_rewritten"] == 2
    new = str((target / "artifacts").resolve())
    restored = sqlite3.connect(target / "mlflow.db")
    rows = restored.execute("SELECT artifact_uri FROM runs ORDER BY run_uuid").fetchall()
    location = restored.execute("SELECT artifact_location FROM experiments").fetchone()[0]
    restored.close()
    assert rows == [(f"file://{new}/r1/artifacts",), ("models:/m-2",)]
    assert location == f"file://{new}"
    assert (target / "artifacts" / "models" / "m-1" / "model.pkl").read_bytes() == b"weights"
    store = (target / "mlflow.db").resolve()
    assert mlflow_problems(settings) == [f"mlflow: the store {store} already holds runs"]
