"""A private Kafka broker, formatted for one test, that the test may stop and start again.

The session's broker serves every other test; a test that takes the broker away, or needs a
freshly formatted one, gets its own on free ports with its own data folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.stack import kafka_broker
from tests.support.ports import free_port
from tickcast.config import Settings


@contextmanager
def private_broker(settings: Settings, folder: Path) -> Iterator[Settings]:
    """``settings`` pointed at a new broker (started, fresh storage); stopped on exit."""
    port, controller = free_port(), free_port()
    previous = os.environ.get("KAFKA_CONTROLLER_PORT")
    os.environ["KAFKA_CONTROLLER_PORT"] = str(controller)  # read by infra/kafka/kafka.sh
    own = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}", "data_dir": folder})
    try:
        health = kafka_broker.start(own)
        assert health.ok, health.detail
        yield own
    finally:
        kafka_broker.stop(own)
        if previous is None:
            os.environ.pop("KAFKA_CONTROLLER_PORT", None)
        else:
            os.environ["KAFKA_CONTROLLER_PORT"] = previous
