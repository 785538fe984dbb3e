"""TurnTimer: per-phase times from a fake clock, observed per phase, logged when slow."""

from __future__ import annotations

import pytest
import structlog.testing

from agents.turn_timer import TurnTimer


class FakeClock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance(self, ms: float) -> None:
        self.ns += int(ms * 1e6)


@pytest.mark.parametrize(("slow_ms", "logged"), [(100.0, True), (200.0, False), (0.0, False)])
def test_phases_are_observed_and_slow_turns_logged(slow_ms: float, logged: bool) -> None:
    clock = FakeClock()
    seen: list[tuple[str, float]] = []
    timer = TurnTimer(lambda phase, ms: seen.append((phase, ms)), slow_ms, clock=clock)
    timer.start()
    clock.advance(10)
    timer.mark("consume")
    clock.advance(120)
    timer.mark("features")
    clock.advance(5)
    timer.mark("consume")  # a phase met twice in a turn adds up in the log
    with structlog.testing.capture_logs() as logs:
        total = timer.end(records=7)
    assert total == pytest.approx(135.0)
    assert seen == [("consume", 10.0), ("features", 120.0), ("consume", 5.0)]
    slow = [entry for entry in logs if entry["event"] == "slow_turn"]
    assert bool(slow) is logged
    assert timer.slow_turns == int(logged)
    if logged:
        assert slow[0]["phases"] == {"consume": 15.0, "features": 120.0}
        assert slow[0]["records"] == 7
        assert slow[0]["total_ms"] == 135.0


def test_a_new_turn_forgets_the_last() -> None:
    clock = FakeClock()
    timer = TurnTimer(None, 50.0, clock=clock)
    timer.start()
    clock.advance(80)
    timer.mark("features")
    assert timer.end() == pytest.approx(80.0)
    timer.start()
    clock.advance(3)
    timer.mark("consume")
    with structlog.testing.capture_logs() as logs:
        assert timer.end() == pytest.approx(3.0)
    assert logs == []
