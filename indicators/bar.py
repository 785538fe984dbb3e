"""The bar every indicator consumes, and its cheap validity check."""

from __future__ import annotations

from typing import NamedTuple

from indicators.errors import InvalidBarError

_INF = float("inf")

#: Columns of a bar DataFrame (``compute_frame``), and the optional quote columns.
BAR_COLUMNS = ("ts_ms", "symbol", "open", "high", "low", "close", "volume")
QUOTE_COLUMNS = ("bid", "ask", "bid_size", "ask_size")


class Bar(NamedTuple):
    """One OHLCV bar of one symbol, optionally with the top of book at its close.

    ``ts_ms`` is the exchange (event) time in epoch milliseconds. Prices and volumes are
    floats; quote fields are ``None`` when the feed has no quotes.

    >>> Bar(1_700_000_000_000, 10.0, 11.0, 9.5, 10.5, 1200.0).close
    10.5
    """

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None


def check_bar(bar: Bar) -> None:
    """Raise :class:`InvalidBarError` unless ``bar`` can be fed to the indicators.

    A bar needs an ``int`` timestamp, finite positive prices, ``high >= low`` and a finite
    volume >= 0 (one NaN would poison every running sum it enters). Quote fields are not
    checked here: :class:`~indicators.microstructure.Quotes` treats unusable ones as absent.
    Open and close are not required to lie in ``[low, high]``: real feeds violate that by a
    tick and no indicator here needs it.

    >>> check_bar(Bar(0, 1.0, 2.0, 0.5, 1.5, 10.0))
    >>> check_bar(Bar(0, 1.0, 0.5, 2.0, 1.5, 10.0))
    Traceback (most recent call last):
    ...
    indicators.errors.InvalidBarError: high_below_low: high 0.5 < low 2.0
    """
    ts, o, h, lo, c, v = bar[:6]
    try:
        # Chained comparisons are False for NaN, so this one test also refuses NaN.
        if 0.0 < lo <= h < _INF and 0.0 < o < _INF and 0.0 < c < _INF and 0.0 <= v < _INF:
            if type(ts) is int:
                return
            raise InvalidBarError("bad_timestamp", f"ts_ms must be an int, got {ts!r}")
    except TypeError:
        raise InvalidBarError("not_a_number", f"non-numeric field in {bar[:6]!r}") from None
    if any(x != x or x in (_INF, -_INF) for x in (o, h, lo, c, v)):
        raise InvalidBarError("non_finite", f"non-finite value in {bar[1:6]!r}")
    if min(o, h, lo, c) <= 0.0:
        raise InvalidBarError("non_positive_price", f"price <= 0 in {bar[1:5]!r}")
    if h < lo:
        raise InvalidBarError("high_below_low", f"high {h!r} < low {lo!r}")
    raise InvalidBarError("negative_volume", f"volume {v!r} < 0")
