"""A freshly formatted broker: the demo's stream step, and children that die with their parent.

The first ``make demo`` after a fresh broker start segfaulted in librdkafka (exit 139): the
lag poll's ``AdminClient.list_consumer_group_offsets`` is answered NOT_COORDINATOR while
``__consumer_offsets`` is being created, and librdkafka <= 2.16 dereferences the admin
handle's missing consumer group (librdkafka #5040). The stream step runs here in a child
process on a broker of its own, formatted for this test, polling lag from the first second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import private_broker
from tickcast.config import Settings

pytestmark = pytest.mark.integration

STREAM_STEP = """
import sys, time
from pathlib import Path
from monitoring.lag import collect_lag
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.test_features_pipeline import make_bars
from tickcast.config import Settings
from devtools.demo import wait_for_groups
from tickcast.processes import ServiceProcess

settings = Settings(scoring_enabled=False)
for _ in range(20):  # the crash window: lag polls while the coordinator is being created
    collect_lag(settings.kafka_bootstrap, [])
apply_topics(settings)
frame = make_bars(10, 60)
publish(settings, frame, "fresh")
worker = ServiceProcess(settings, ["worker", "--metrics-port", "0"], Path(sys.argv[1])).start()
try:
    wait_for_groups(settings, {settings.consumer_group: settings.topic("ticks")}, 120,
                    worker.running)
finally:
    worker.stop()
print("stream step done")
"""

ORPHAN = """
import sys, time
from pathlib import Path
from tickcast.config import Settings
from tickcast.processes import ServiceProcess

worker = ServiceProcess(Settings(), ["worker", "--metrics-port", "0"], Path(sys.argv[1])).start()
print(worker.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def fresh_broker(stack: Settings, tmp_path: Path) -> Iterator[dict[str, str]]:
    with private_broker(stack, tmp_path / "data") as settings:
        yield {
            **os.environ,
            "TICKCAST_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "TICKCAST_TOPIC_PREFIX": "fresh.",
            "TICKCAST_CONSUMER_GROUP": "fresh-group",
            "TICKCAST_REDIS_KEY_PREFIX": f"fresh{settings.kafka_bootstrap[-5:]}:",
            "TICKCAST_DATA_DIR": str(settings.data_dir),
        }


def test_demo_stream_step_on_a_freshly_formatted_broker(
    fresh_broker: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", STREAM_STEP, str(tmp_path / "worker.log")],
        env=fresh_broker, capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert "stream step done" in done.stdout


def test_a_started_process_dies_with_its_parent(stack: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "TICKCAST_TOPIC_PREFIX": "orphan.", "TICKCAST_CONSUMER_GROUP": "orphan"}
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(tmp_path / "worker.log")],
        env=env, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(3)
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)  # as a segfault would: no cleanup code runs
    parent.wait(10)
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "the worker outlived the process that started it"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (an exited child not yet reaped, a zombie, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
