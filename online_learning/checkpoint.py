"""Checkpoints of the online challengers as versioned MLflow artifacts.

Each :func:`save_checkpoint` is one MLflow run in the experiment ``tickcast-online``: every
challenger is pickled to ``challengers/<name>.pkl`` (plus an optional ``state.pkl`` with the
learner's evaluation and test state, and ``manifest.json``), tagged with its
``n_learned``/version and the last event time it learned from, and the run is closed
``FINISHED`` only after all artifacts are written. :func:`restore` loads the newest finished
checkpoint, so a restarted learner resumes where it stopped and the scoring pipeline picks
up the latest challengers (poll :func:`latest_checkpoint_id` to see when one is new).

Artifacts are pickles written by tickcast itself; only point this at a trusted store.
MLflow is imported lazily (it is slow to import) and every MLflow failure becomes a
:class:`~tickcast.errors.DependencyError`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pickle
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from online_learning.challengers import OnlineChallenger
from tickcast.config import Settings
from tickcast.errors import DependencyError

EXPERIMENT = "tickcast-online"


def experiment_name(settings: Settings) -> str:
    """The checkpoint experiment of a namespace: demos and backtests never share production's."""
    prefix = settings.topic_prefix.strip(".-_")
    return f"{EXPERIMENT}-{prefix}" if prefix else EXPERIMENT


KIND_TAG = "tickcast.kind"
KIND = "online-checkpoint"
_seq = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A restored checkpoint: the challengers, the learner state (or None) and the run."""

    run_id: str
    challengers: list[OnlineChallenger]
    state: Any
    tags: dict[str, str]


def _client(settings: Settings) -> Any:
    from mlflow.tracking import MlflowClient

    if settings.mlflow_uri.startswith("sqlite:///"):
        db = Path(settings.mlflow_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.mlflow_uri)


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def _experiment_id(client: Any, settings: Settings, name: str, create: bool) -> str | None:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    if not create:
        return None
    location = None
    if _is_local(settings.mlflow_uri):
        root = Path(settings.mlflow_artifacts) / name
        root.mkdir(parents=True, exist_ok=True)
        location = root.resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def save_checkpoint(
    settings: Settings,
    challengers: list[OnlineChallenger],
    *,
    state: Any = None,
    experiment: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Log ``challengers`` (and ``state``) as one finished MLflow run; returns its run id."""
    last_ts = max((c.last_event_ts or 0 for c in challengers), default=0)
    tags = {KIND_TAG: KIND, "last_event_ts": str(last_ts), **(extra_tags or {})}
    for c in challengers:
        tags[f"n_learned.{c.name}"] = str(c.n_learned)
        tags[f"version.{c.name}"] = c.version
    try:
        client = _client(settings)
        exp_id = _experiment_id(
            client, settings, experiment or experiment_name(settings), create=True
        )
        run = client.create_run(exp_id, tags=tags, run_name=f"checkpoint-{last_ts}")
    except Exception as exc:
        raise DependencyError("mlflow", f"cannot start a checkpoint run: {exc}") from exc
    run_id = str(run.info.run_id)
    try:
        with tempfile.TemporaryDirectory(prefix="tickcast-ckpt-") as tmp:
            root = Path(tmp)
            (root / "challengers").mkdir()
            for c in challengers:
                (root / "challengers" / f"{c.name}.pkl").write_bytes(
                    pickle.dumps(c, protocol=pickle.HIGHEST_PROTOCOL)
                )
            if state is not None:
                (root / "state.pkl").write_bytes(pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
            manifest = {
                "order": [c.name for c in challengers],
                "challengers": [c.info() for c in challengers],
            }
            (root / "manifest.json").write_text(json.dumps(manifest, default=str))
            client.log_artifacts(run_id, str(root))
        step = next(_seq)
        now = int(time.time() * 1000)
        client.log_metric(run_id, "checkpoint_seq", float(time.time_ns() // 1000), now, step)
        for c in challengers:
            client.log_metric(run_id, f"n_learned.{c.name}", float(c.n_learned), now, step)
            client.log_metric(run_id, f"memory_bytes.{c.name}", float(c.memory_bytes()), now, step)
        client.set_terminated(run_id, "FINISHED")
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        raise DependencyError("mlflow", f"checkpoint {run_id} failed: {exc}") from exc
    return run_id


def _latest_run(settings: Settings, experiment: str | None) -> Any | None:
    try:
        client = _client(settings)
        exp_id = _experiment_id(
            client, settings, experiment or experiment_name(settings), create=False
        )
        if exp_id is None:
            return None
        runs = client.search_runs(
            [exp_id],
            filter_string=f"attributes.status = 'FINISHED' and tags.`{KIND_TAG}` = '{KIND}'",
            order_by=["attributes.start_time DESC", "metrics.checkpoint_seq DESC"],
            max_results=1,
        )
    except Exception as exc:
        raise DependencyError("mlflow", f"cannot list checkpoints: {exc}") from exc
    return runs[0] if runs else None


def forget_checkpoints(settings: Settings, experiment: str | None = None) -> int:
    """Delete every checkpoint run of the namespace's experiment (a namespace reset: a demo
    must not resume learners, offsets and test state from an earlier demo's topics).

    Returns how many runs were deleted (MLflow keeps them as deleted runs until a ``gc``).
    """
    try:
        client = _client(settings)
        exp_id = _experiment_id(
            client, settings, experiment or experiment_name(settings), create=False
        )
        if exp_id is None:
            return 0
        runs = client.search_runs([exp_id], max_results=50_000)
        for run in runs:
            client.delete_run(run.info.run_id)
    except Exception as exc:
        raise DependencyError("mlflow", f"cannot delete checkpoints: {exc}") from exc
    return len(runs)


def latest_checkpoint_id(settings: Settings, experiment: str | None = None) -> str | None:
    """Run id of the newest finished checkpoint, or None when there is none."""
    run = _latest_run(settings, experiment)
    return None if run is None else str(run.info.run_id)


def restore_checkpoint(settings: Settings, experiment: str | None = None) -> Checkpoint | None:
    """Load the newest finished checkpoint (None when the experiment has none)."""
    run = _latest_run(settings, experiment)
    if run is None:
        return None
    run_id = str(run.info.run_id)
    try:
        from mlflow.artifacts import download_artifacts

        with tempfile.TemporaryDirectory(prefix="tickcast-restore-") as tmp:
            root = Path(
                download_artifacts(run_id=run_id, dst_path=tmp, tracking_uri=settings.mlflow_uri)
            )
            manifest = json.loads((root / "manifest.json").read_text())
            challengers = [
                pickle.loads((root / "challengers" / f"{name}.pkl").read_bytes())
                for name in manifest["order"]
            ]
            state_path = root / "state.pkl"
            state = pickle.loads(state_path.read_bytes()) if state_path.exists() else None
    except Exception as exc:
        raise DependencyError("mlflow", f"cannot restore checkpoint {run_id}: {exc}") from exc
    return Checkpoint(run_id, challengers, state, dict(run.data.tags))


def restore(settings: Settings, experiment: str | None = None) -> list[OnlineChallenger]:
    """The challengers of the newest checkpoint ([] when there is none yet)."""
    checkpoint = restore_checkpoint(settings, experiment)
    return [] if checkpoint is None else checkpoint.challengers
