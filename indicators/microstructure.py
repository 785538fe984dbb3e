"""Top-of-book features: spread, mid, relative spread, quote imbalance."""

from __future__ import annotations

from indicators.bar import Bar
from indicators.base import NAN, Indicator

_INF = float("inf")
_ABSENT = (NAN, NAN, NAN, NAN)


class Quotes(Indicator):
    """Bid/ask features of the latest bar; ``None`` (``NaN``) when the bar has no quotes.

    ``spread = ask - bid``, ``mid = (bid + ask) / 2``, ``rel_spread = spread / mid``,
    ``quote_imb = (bid_size - ask_size) / (bid_size + ask_size)`` in [-1, 1]. Prices must be
    finite and positive and sizes non-negative with a positive total, otherwise the affected
    outputs are undefined (a non-numeric quote counts as absent). Stateless apart from the
    last values: defined from the first bar.

    >>> q = Quotes()
    >>> q.update(99.0, 101.0, 300.0, 100.0)
    >>> q.values()
    (2.0, 100.0, 0.02, 0.5)
    >>> q.update(None, None, None, None)
    >>> q.values()
    (None, None, None, None)
    """

    __slots__ = ()
    kind = "quotes"
    n_outputs = 4

    def __init__(self) -> None:
        super().__init__(warmup=1)

    @property
    def names(self) -> tuple[str, ...]:
        return ("spread", "mid", "rel_spread", "quote_imb")

    def params(self) -> dict[str, float]:
        return {}

    def update(
        self,
        bid: float | None,
        ask: float | None,
        bid_size: float | None = None,
        ask_size: float | None = None,
    ) -> None:
        """Take the latest quotes (any of them may be ``None``)."""
        self._n = 1
        if bid is None or ask is None:
            self.out = _ABSENT
            return
        try:
            if 0.0 < bid < _INF and 0.0 < ask < _INF:
                spread = ask - bid
                mid = 0.5 * (bid + ask)
                rel = spread / mid
            else:
                spread = mid = rel = NAN
            if bid_size is not None and ask_size is not None and bid_size >= 0.0 <= ask_size:
                total = bid_size + ask_size
                imb = (bid_size - ask_size) / total if 0.0 < total < _INF else NAN
            else:
                imb = NAN
        except TypeError:  # a non-numeric quote is as good as none
            self.out = _ABSENT
            return
        self.out = (spread, mid, rel, imb)

    def update_bar(self, bar: Bar) -> None:
        self.update(bar.bid, bar.ask, bar.bid_size, bar.ask_size)
