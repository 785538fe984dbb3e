"""The ``tickcast`` command line against the real stack: doctor tells the truth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.stack import redis_server
from tests.support.ports import free_port
from tickcast.config import Settings
from tickcast.processes import child_env

pytestmark = pytest.mark.integration


def tickcast(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickcast.cli", *args],
        env=child_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_reports_a_stopped_redis_and_recovers(stack: Settings, tmp_path: Path) -> None:
    # A private Redis we can stop, and a private chDB path: embedded chDB is locked by the
    # process that opened it, and the test session may hold the shared one.
    own = stack.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "data_dir": tmp_path,
            "clickhouse_dsn": f"chdb://{tmp_path / 'clickhouse'}",
        }
    )
    redis_server.start(own)
    try:
        healthy = tickcast(own, "doctor")
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert "everything answers" in healthy.stdout
    finally:
        assert redis_server.stop(own)
    broken = tickcast(own, "doctor")
    assert broken.returncode == 1
    assert "redis" in broken.stderr
    assert "does not answer" in broken.stderr


def test_doctor_reports_an_unreachable_broker(stack: Settings) -> None:
    done = tickcast(stack, "doctor", TICKCAST_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "kafka" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TICKCAST_CLICKHOUSE_DSN", "postgres://nowhere"),
        ("TICKCAST_REDIS_URL", "localhost:6379"),
        ("TICKCAST_KAFKA_BOOTSTRAP", "no-port"),
    ],
)
def test_bad_configuration_is_one_line_not_a_traceback(
    stack: Settings, variable: str, value: str
) -> None:
    done = tickcast(stack, "status", **{variable: value})
    assert done.returncode == 2
    assert variable in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3  # rich may wrap one long line


def test_missing_java_is_named(stack: Settings, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mvn", "redis-server"):
        target = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if target:
            (bin_dir / tool).symlink_to(target)
    done = tickcast(stack, "doctor", PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}")
    assert done.returncode == 1
    assert "java" in done.stderr
    assert "install Java 17" in done.stderr
