"""SIGTERM stops a worker cleanly: it leaves its consumer group instead of being killed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backtesting.namespace import reset_namespace
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess
from tickcast.config import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("runner", ["faust", "direct"])
def test_sigterm_exits_cleanly_and_frees_the_group(
    settings: Settings, tmp_path: Path, runner: str
) -> None:
    apply_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", runner).start()
    time.sleep(8)  # let it join the group and go idle
    assert worker.alive()
    worker.stop(timeout=25)
    assert worker.proc is not None
    assert worker.proc.returncode == 0, worker.log_tail()  # SIGKILL would be -9
    reset_namespace(settings, timeout_s=5)  # raises if the group still had a member
