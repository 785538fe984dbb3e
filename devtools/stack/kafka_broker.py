"""Kafka: the project's single-node KRaft broker, driven by ``infra/kafka/kafka.sh``."""

from __future__ import annotations

import os
import shutil
import subprocess

from streams.kafka_admin import check_broker
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.health import Health


def _script(settings: Settings) -> list[str]:
    return ["bash", str(settings.kafka_home / "kafka.sh")]


def _env(settings: Settings) -> dict[str, str]:
    port = settings.kafka_bootstrap.split(",")[0].rpartition(":")[2]
    return {
        **os.environ,
        "TICKCAST_DATA_DIR": str(settings.data_dir),
        "KAFKA_PORT": port,
        "KAFKA_VERSION": settings.kafka_version,
    }


def _run(settings: Settings, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_script(settings), command], env=_env(settings), text=True, capture_output=True
    )


def start(settings: Settings) -> Health:
    """Fetch the jars if needed and start the local broker; a running one is left alone."""
    health = check_broker(settings, timeout=1.0)
    if health.ok:
        return health
    if shutil.which("java") is None:
        raise DependencyError("kafka", "java is not installed", "install Java 17 (openjdk-17-jre)")
    done = _run(settings, "start")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DependencyError(
            "kafka", f"broker did not start: {tail[0]}", "see infra/kafka/README.md"
        )
    health = check_broker(settings, timeout=5.0)
    if not health.ok:
        raise DependencyError("kafka", health.detail, health.hint)
    return health


def stop(settings: Settings) -> bool:
    """Stop the local broker; True when the script stopped one."""
    return _run(settings, "stop").returncode == 0
