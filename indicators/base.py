"""The indicator contract and its one warm-up rule.

Every indicator is a small class with an O(1) ``update(...)`` on its natural inputs, an
``update_bar(bar)`` adapter used by :class:`~indicators.feature_set.SymbolState`, constant-size
state (fixed ring buffers and running sums, never a growing list) and one or more outputs
named from its parameters (``names``).

**The warm-up rule, decided here once for all indicators.** An indicator instance has an
integer ``warmup``: the number of updates it needs before its outputs are defined. It equals
TA-Lib's *lookback* + 1, so the first defined value is on the same bar as TA-Lib's first
non-NaN output (e.g. ``SMA(20)``: 20 bars, ``RSI(14)``: 15 bars, ``MACD(12, 26, 9)``: 34
bars). Each update counts into ``_n``, which saturates at ``warmup`` (so state size does not
grow with the length of the series); until ``_n == warmup`` every output is ``None``
(``NaN`` in feature vectors). After warm-up an output may still be undefined for a reason of
its own (no quotes on the bar): it is ``None`` / ``NaN`` too.

Internally each update stores the outputs as a tuple of floats in ``out`` (``NaN`` for
"undefined"; left all-``NaN`` until warm), which the per-symbol state reads without a call;
the public :meth:`Indicator.values` and :meth:`Indicator.get` turn ``NaN`` into ``None``.
"""

from __future__ import annotations

import math
from typing import ClassVar

from indicators.bar import Bar

NAN = math.nan


def fmt_param(x: float) -> str:
    """Format a parameter for a feature name: ``2.0 -> '2'``, ``2.5 -> '2p5'``.

    >>> fmt_param(20), fmt_param(2.0), fmt_param(2.5)
    ('20', '2', '2p5')
    """
    return f"{x:g}".replace(".", "p").replace("-", "m")


class Indicator:
    """Base class: the warm-up rule, ``values()``/``get()``/``ready``, and the contract.

    Subclasses set ``kind`` (the registry key, also the stem of feature names) and
    ``outputs`` (the name stems of their outputs), call ``super().__init__(warmup)``, count
    updates into ``_n`` (``if self._n < self.warmup: self._n += 1``), store ``out`` only once
    ``_n == warmup``, and implement ``update(...)`` on their natural inputs,
    ``update_bar(bar)``, ``names`` and ``params()``. Indicators of the close alone derive
    from :class:`CloseIndicator` instead.
    """

    __slots__ = ("_n", "out", "warmup")

    kind: ClassVar[str] = ""
    n_outputs: ClassVar[int] = 1

    def __init__(self, warmup: int) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}")
        self.warmup = warmup
        self._n = 0
        self.out: tuple[float, ...] = (NAN,) * self.n_outputs

    # -- contract --------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Feature names of the outputs, built from the parameters (``rsi_14``)."""
        raise NotImplementedError

    def params(self) -> dict[str, float]:
        """The constructor parameters (``type(ind)(**ind.params())`` is a fresh copy)."""
        raise NotImplementedError

    def update_bar(self, bar: Bar) -> None:
        """Update from a bar (picks the fields this indicator uses)."""
        raise NotImplementedError

    # -- the warm-up rule --------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once ``warmup`` updates have been seen."""
        return self._n >= self.warmup

    def values(self) -> tuple[float | None, ...]:
        """All outputs, in ``names`` order; ``None`` during warm-up or where undefined."""
        if self._n < self.warmup:
            return (None,) * self.n_outputs
        return tuple(None if v != v else v for v in self.out)

    def get(self) -> float | None:
        """The first output (the only one for single-output indicators)."""
        return self.values()[0]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class CloseIndicator(Indicator):
    """An indicator of the close alone: ``update(close)``; the state passes it the close."""

    __slots__ = ()

    def update(self, x: float) -> None:
        """Add one close."""
        raise NotImplementedError

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.close)
