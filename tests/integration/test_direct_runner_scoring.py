"""The direct runner with scoring: rolling checkpoints survive ``kill -9`` outcome for outcome.

The direct runner snapshots a share of the dirty symbols per loop turn and commits each
partition only up to the first tick no written snapshot covers (agents.direct_runner). A
SIGKILL while ticks are still flowing (the publisher is paced, so the kill lands between
rolling snapshots, and holds its second half until the kill, so the kill is mid-replay however
loaded the machine) must still give the outcomes of an uninterrupted run (an in-process
replay of the same ticks), every replayed outcome repeating the first exactly. Committing
the consumed offsets without that hold-back makes this test fail.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.integration.pipeline import WorkerProcess, read_topic
from tests.integration.test_features_pipeline import make_bars
from tests.integration.test_scoring_pipeline import (
    KEY,
    NAME,
    _dedupe,
    _model,
    _paced,
    _same,
    _uninterrupted,
    scoring,  # noqa: F401  (fixture)
)
from tickcast.config import Settings
from training.registry import register

pytestmark = pytest.mark.integration


def test_direct_runner_sigkill_gives_the_uninterrupted_outcomes(
    scoring: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = scoring.model_copy(update={"checkpoint_interval_s": 0.2})
    register(_model(5), name=NAME, settings=settings)
    frame = make_bars(30, 250, seed=17)
    want = _dedupe(_uninterrupted(settings, frame))
    first = WorkerProcess(settings, tmp_path / "worker1.log", "direct").start()
    killed = threading.Event()  # the second half of the ticks waits for the kill
    publisher = threading.Thread(
        target=_paced, args=(settings, frame, 0.03, (125, killed)), daemon=True
    )
    publisher.start()
    try:
        seen = read_topic(settings, "outcomes", "Outcome", lambda r: len(r) >= len(want) // 3,
                          alive=first.alive)  # fmt: skip
        first.kill()
        killed.set()
        assert publisher.is_alive(), "the ticks were all published before the kill"
        second = WorkerProcess(settings, tmp_path / "worker2.log", "direct").start()
        try:
            got = read_topic(settings, "outcomes", "Outcome",
                             lambda r: len(_dedupe(r)) >= len(want), alive=second.alive,
                             timeout_s=240)  # fmt: skip
        finally:
            second.stop()
    finally:
        killed.set()  # also when the test failed before the kill
        publisher.join()
    assert len(_dedupe(seen)) < len(want)
    deduped = _dedupe(got)
    assert set(deduped) == set(want)
    fields = [f for f in want[next(iter(want))] if f != "correlation_id"]
    for key, expected in want.items():
        assert all(_same(deduped[key][f], expected[f]) for f in fields), key
    for record in got:  # a replayed outcome repeats the first one exactly
        first_seen = deduped[tuple(record[k] for k in KEY)]
        assert all(_same(record[f], first_seen[f]) for f in fields)
