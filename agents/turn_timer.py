"""Where a worker's loop turn goes: the time of each phase, and a log line for slow turns.

A tick's latency is the wait for the turn in progress plus its own turn, so a stall in any
phase (a garbage collection, a burst of snapshots, a slow Redis reply) shows up as a tail.
:class:`TurnTimer` splits each turn into named phases with one ``perf_counter_ns`` per
boundary, feeds ``tickcast_worker_turn_ms{phase}`` and, when a turn exceeds
``slow_ms``, logs ``slow_turn`` with every phase's share, so an operator (or a benchmark)
sees which phase a tail came from without attaching a profiler.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

Observe = Callable[[str, float], None]


class TurnTimer:
    """``start()``, then ``mark(phase)`` after each phase, then ``end(**context)``."""

    __slots__ = ("_clock", "_last", "_observe", "_phases", "_start", "slow_ms", "slow_turns")

    def __init__(
        self,
        observe: Observe | None,
        slow_ms: float,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._observe = observe
        self._clock = clock
        self.slow_ms = slow_ms
        self.slow_turns = 0
        self._phases: list[tuple[str, int]] = []
        self._start = self._last = 0

    def start(self) -> None:
        """Begin a turn."""
        self._start = self._last = self._clock()
        self._phases.clear()

    def mark(self, phase: str) -> None:
        """Close ``phase``: the time since the previous mark (or :meth:`start`)."""
        now = self._clock()
        self._phases.append((phase, now - self._last))
        self._last = now

    def end(self, **context: object) -> float:
        """Finish the turn; return its total in ms (logged when over ``slow_ms``)."""
        total_ms = (self._last - self._start) / 1e6
        observe = self._observe
        if observe is not None:
            for phase, ns in self._phases:
                observe(phase, ns / 1e6)
        if total_ms >= self.slow_ms > 0:
            self.slow_turns += 1
            phases: dict[str, float] = {}
            for phase, ns in self._phases:
                phases[phase] = round(phases.get(phase, 0.0) + ns / 1e6, 2)
            log.warning("slow_turn", total_ms=round(total_ms, 2), phases=phases, **context)
        return total_ms
