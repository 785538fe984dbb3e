"""Point-in-time tables: what was *published* by event time t, never what it describes.

:class:`AsOfSeries` keeps the published values of one series ordered by publication time;
``at(t)`` is the latest value with ``published_at <= t``. :class:`DecayedSentiment` keeps the
exponentially decayed sum of scores per symbol. Both are the same code live, in replay and in
training, so a frame built from the same records equals what the worker computed.

**Late records** (``docs/side_streams.md``). A record is *late* when the table was already
queried at an event time ``>= published_at`` before the record arrived. It is applied from
then on, never retroactively: rows already computed keep their values, later queries see it.
``add`` returns whether the record was late so the caller can count it.

>>> s = AsOfSeries()
>>> s.add(100, 1.0), s.add(200, 2.0)
(False, False)
>>> s.at(99), s.at(150), s.at(200)
(None, (1.0, 100), (2.0, 200))
>>> d = DecayedSentiment(half_life_ms=1000)
>>> _ = d.add(0, 0.8); _ = d.add(1000, -0.4)
>>> d.at(2000)  # (0.8/4 - 0.4/2) / (1/4 + 1/2): the decayed mean, its weight, last publication
(0.0, 0.75, 1000)
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from dataclasses import dataclass, field

__all__ = ["AsOfSeries", "DecayedSentiment"]


@dataclass(slots=True)
class AsOfSeries:
    """Published values of one series, queried as of an event time.

    ``max_records`` bounds memory: past it the oldest record goes (it is superseded for
    every query at or after the second-oldest publication time).
    """

    max_records: int = 4096
    pubs: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    queried_until: int | None = None
    """The latest event time the table answered for (decides lateness)."""

    def add(self, published_at: int, value: float) -> bool:
        """Insert a published value; returns whether it arrived late.

        A second value with the same ``published_at`` replaces the first (a correction
        published at the same instant: the later arrival wins).
        """
        late = self.queried_until is not None and published_at <= self.queried_until
        i = bisect_right(self.pubs, published_at)
        if i and self.pubs[i - 1] == published_at:
            self.values[i - 1] = value
            return late
        self.pubs.insert(i, published_at)
        self.values.insert(i, value)
        if len(self.pubs) > self.max_records:
            del self.pubs[0], self.values[0]
        return late

    def at(self, ts: int) -> tuple[float, int] | None:
        """``(value, published_at)`` of the latest value published at or before ``ts``."""
        if self.queried_until is None or ts > self.queried_until:
            self.queried_until = ts
        i = bisect_right(self.pubs, ts)
        return (self.values[i - 1], self.pubs[i - 1]) if i else None

    def trim(self, ts: int) -> None:
        """Forget the values superseded for every query at or after ``ts``."""
        i = bisect_right(self.pubs, ts) - 1
        if i > 0:
            del self.pubs[:i], self.values[:i]


@dataclass(slots=True)
class DecayedSentiment:
    """Exponentially decayed news sentiment of one symbol.

    With scores ``c_i`` published at ``p_i <= t`` and half-life ``H``, the weights are
    ``w_i = 2 ** (-(t - p_i) / H)``; ``at(t)`` gives the decayed mean ``Σ w_i c_i / Σ w_i``,
    the decayed count ``Σ w_i`` and the latest ``p_i`` (``None`` before the first item).
    State: two sums referred to one time, plus the items published after it (bounded).
    """

    half_life_ms: float
    max_pending: int = 4096
    total: float = 0.0
    weight: float = 0.0
    ref: int | None = None
    """Time the sums refer to: the latest query (or folded item)."""
    last_pub: int | None = None
    pending: list[tuple[int, float]] = field(default_factory=list)
    """Items published after ``ref``, by publication time, folded in when time reaches them."""
    queried_until: int | None = None
    """The latest event time the table answered for (decides lateness)."""

    def _decay_to(self, ts: int) -> None:
        if self.ref is not None and ts > self.ref:
            f = 0.5 ** ((ts - self.ref) / self.half_life_ms)
            self.total *= f
            self.weight *= f
        if self.ref is None or ts > self.ref:
            self.ref = ts

    def _fold(self, published_at: int, score: float) -> None:
        if self.ref is not None and published_at < self.ref:
            f = 0.5 ** ((self.ref - published_at) / self.half_life_ms)
        else:
            self._decay_to(published_at)
            f = 1.0
        self.total += score * f
        self.weight += f
        if self.last_pub is None or published_at > self.last_pub:
            self.last_pub = published_at

    def add(self, published_at: int, score: float) -> bool:
        """Take one scored item; returns whether it was late.

        An item at or before ``ref`` enters the sums with the weight it has at ``ref``, so
        every later query is exact up to rounding; values already computed are not revised.
        """
        if not math.isfinite(score):
            raise ValueError(f"sentiment score must be finite, got {score!r}")
        late = self.queried_until is not None and published_at <= self.queried_until
        if self.ref is not None and published_at <= self.ref:
            self._fold(published_at, score)
            return late
        insort(self.pending, (published_at, score), key=lambda item: item[0])
        if len(self.pending) > self.max_pending:
            self._fold(*self.pending.pop(0))
        return late

    def at(self, ts: int) -> tuple[float, float, int | None]:
        """``(decayed mean or NaN, decayed count, latest publication time)`` as of ``ts``."""
        if self.queried_until is None or ts > self.queried_until:
            self.queried_until = ts
        n = bisect_right(self.pending, ts, key=lambda item: item[0])
        for item in self.pending[:n]:
            self._fold(*item)
        del self.pending[:n]
        self._decay_to(ts)
        mean = self.total / self.weight if self.weight > 0.0 else math.nan
        return mean, self.weight, self.last_pub
