"""SIGTERM closes a side-feature worker's side consumers: no member is left in any of its groups."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from devtools.synthetic.bars import random_walk_panel
from sidestreams.publish import publish_side
from sidestreams.sources import MacroData
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, read_topic
from tickcast.config import Settings

pytestmark = pytest.mark.integration

START = 1_243_886_400_000  # 2009-06-01T20:00Z


def _members(admin: AdminClient, group: str) -> int:
    """Members of ``group`` by the admin API (0 for an unknown or empty group)."""
    described = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    return len(described.members)


def test_sigterm_closes_the_side_consumers_and_leaves_no_group_member(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"side_features": True, "side_macro_series": "realgdp", "scoring_enabled": False}
    )
    apply_topics(settings)
    publish_side(settings, MacroData(series=("realgdp",)).load().records[:40])
    bars = random_walk_panel(("AAPL", "MSFT"), 40, start_ts_ms=START)
    publish(settings, bars, "test")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    groups = (settings.consumer_group, f"{settings.consumer_group}-side")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        got = read_topic(
            settings, "features", "FeatureVector", lambda r: len(r) >= len(bars),
            alive=worker.alive,
        )  # fmt: skip
        assert len(got) >= len(bars)  # the side consumers are open: every batch polled them
        assert _members(admin, settings.consumer_group) == 1
    finally:
        worker.stop(timeout=25)
    assert worker.proc is not None
    assert worker.proc.returncode == 0, worker.log_tail()
    assert "side consumers closed" in worker.log.read_text(), worker.log_tail()
    deadline = time.monotonic() + 10.0
    left = {g: _members(admin, g) for g in groups}
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        left = {g: _members(admin, g) for g in groups}
    assert left == dict.fromkeys(groups, 0)
