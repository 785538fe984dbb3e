"""SIGTERM stops a worker cleanly: it leaves its consumer group instead of being killed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from backtesting.namespace import reset_namespace
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess
from tickcast.config import Settings

pytestmark = pytest.mark.integration


def wait_joined(settings: Settings, alive: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Until the worker is a member of its group (start-up takes 2-8 s, more under load)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert alive(), "the worker died before joining its group"
        found = admin.describe_consumer_groups([settings.consumer_group])
        group = found[settings.consumer_group].result(timeout=10)
        if group.members:
            return
        time.sleep(0.5)
    raise AssertionError(f"the worker did not join {settings.consumer_group} in {timeout_s} s")


@pytest.mark.parametrize("runner", ["faust", "direct"])
def test_sigterm_exits_cleanly_and_frees_the_group(
    settings: Settings, tmp_path: Path, runner: str
) -> None:
    apply_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", runner).start()
    wait_joined(settings, worker.alive)
    time.sleep(1)  # and go idle
    assert worker.alive()
    worker.stop(timeout=25)
    assert worker.proc is not None
    assert worker.proc.returncode == 0, worker.log_tail()  # SIGKILL would be -9
    reset_namespace(settings, timeout_s=5)  # raises if the group still had a member


@pytest.mark.parametrize("runner", ["faust", "direct"])
def test_sigterm_during_start_up_exits_cleanly(
    settings: Settings, tmp_path: Path, runner: str
) -> None:
    """Stopped while it loads its models and state (a rolling restart under load does it),
    the worker ends with exit 0 at once instead of dying of the signal (-15)."""
    apply_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", runner).start()
    deadline = time.monotonic() + 60
    while '"event": "feature_set"' not in worker.log_tail(20_000):  # start-up under way
        assert worker.alive()
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.05)
    worker.stop(timeout=25)
    assert worker.proc is not None
    assert worker.proc.returncode == 0, worker.log_tail()
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    group = admin.describe_consumer_groups([settings.consumer_group])[settings.consumer_group]
    assert not group.result(timeout=10).members  # it never joined
