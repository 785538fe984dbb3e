"""A whole pipeline in its own namespace and folder, for the console's browser tests and
its benchmark: topics, an ``always_up`` champion in a private MLflow store, a worker, a
ClickHouse sink (its own chDB, read through its read endpoint) and the API, with an admin
and a viewer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from devtools.prometheus_runner import free_port
from indicators.feature_set import FeatureSet
from serving.security.users import create_user_command
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.processes import ServiceProcess
from training.champion import PackagedModel
from training.models import make_model
from training.registry import register

PASSWORD = "correct horse battery staple"
#: Every topic the sink can store, ticks included (the console's chart draws closes).
SINK_TOPICS = "ticks,features,predictions,outcomes,drift,model-events"


@dataclass
class Pipeline:
    """The running pipeline: its settings, the API's base URL and its processes."""

    settings: Settings
    base: str
    processes: list[ServiceProcess]

    def token(self, user: str) -> str:
        """An access token of ``user`` (password :data:`PASSWORD`)."""
        answer = httpx.post(
            f"{self.base}/v1/auth/token",
            data={"grant_type": "password", "username": user, "password": PASSWORD},
            timeout=10,
        )
        if answer.status_code != 200:
            raise DependencyError("api", f"login of {user} failed: {answer.text[:200]}")
        return str(answer.json()["access_token"])

    def wait(self, what: str, check: Callable[[], bool], timeout_s: float) -> None:
        """Until ``check()``; fails with a process's log when one died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                if not process.running():
                    tail = process.log_tail()
                    raise DependencyError(process.args[0], f"died while waiting for {what}: {tail}")
            if check():
                return
            time.sleep(0.5)
        raise DependencyError("pipeline", f"timed out after {timeout_s:.0f} s waiting for {what}")


def register_always_up(settings: Settings) -> None:
    """Register an ``always_up`` champion over the whole feature set (scoring's width)."""
    names = tuple(FeatureSet.default().names)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, len(names))), columns=list(names))
    model = make_model("always_up").fit(frame, np.arange(200) % 2)
    version = FeatureSet.default().version
    register(
        PackagedModel("always_up", model, names, version, 1, 0.01, (0, 200)),
        name=settings.model_name,
        settings=settings,
    )


@contextmanager
def pipeline(stack: Settings, folder: Path) -> Iterator[Pipeline]:
    """Start everything in a fresh namespace under ``folder``; stop it all on exit."""
    ns = "c" + uuid.uuid4().hex[:9]
    metrics_port, api_port = free_port(), free_port()
    settings = stack.model_copy(
        update={
            "topic_prefix": f"{ns}.", "redis_key_prefix": f"{ns}:", "clickhouse_database": ns,
            "consumer_group": f"{ns}-group", "data_dir": folder, "clickhouse_dsn": "",
            "mlflow_tracking_uri": "", "mlflow_artifact_root": "", "model_name": f"{ns}-h1",
            "api_models": f"{ns}-h1", "clickhouse_read_port": free_port(), "api_port": api_port,
            "worker_metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
            "password_scrypt_n": 2**10, "drift_window_ms": 3_600_000, "sink_topics": SINK_TOPICS,
        }
    )  # fmt: skip
    apply_topics(settings)
    register_always_up(settings)
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = [
        ServiceProcess(settings, ["worker", "--metrics-port", str(metrics_port)],
                       logs / "worker.log").start(),
        ServiceProcess(settings, ["sink", "run"], logs / "sink.log").start(),
        ServiceProcess(settings, ["serve", "--port", str(api_port)], logs / "api.log").start(),
    ]  # fmt: skip
    running = Pipeline(settings, f"http://127.0.0.1:{api_port}", processes)
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{running.base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        running.wait("the API", healthy, 60)
        create_user_command(settings, "ann", PASSWORD, "admin")
        create_user_command(settings, "vic", PASSWORD, "viewer")
        yield running
    finally:
        for process in reversed(processes):
            process.stop()
