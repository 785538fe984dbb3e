"""Run the real ClickHouse sink in the test's process until it has written what a test needs."""

from __future__ import annotations

import time

from sinks.sink_process import SinkRunner
from tickcast.config import Settings


def sink_until_written(settings: Settings, predictions: int, timeout_s: float = 120) -> None:
    """Consume ``predictions`` records of the predictions topic and commit at least one batch."""
    runner = SinkRunner(settings, topics=["predictions"])
    runner.start()
    try:
        deadline = time.monotonic() + timeout_s
        while runner.consumed < predictions or runner.committed_batches == 0:
            assert time.monotonic() < deadline, "the sink did not write the predictions"
            runner.step(0.1)
    finally:
        runner.close()
