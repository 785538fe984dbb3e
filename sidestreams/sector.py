"""Equal-weight sector and market returns computed from the ticks themselves.

Each symbol's one-bar log return ``r = ln(close_t / close_prev)`` is kept with the time of
its bar. For a bar of symbol ``s`` at ``t`` the board answers from the returns of bars
**strictly before t** (the last complete cross-section; bars of other symbols at the same t
may or may not have been processed yet, so using them would make live differ from replay):

* ``sector_ret``: mean of the latest such return of every symbol of ``s``'s sector;
* ``market_ret``: the same mean over every symbol the board has seen;
* ``rel_sector_ret`` / ``rel_market_ret``: ``s``'s own latest such return minus each mean.

``NaN`` where no return is known yet. Symbols missing from the sector map are in sector
``UNKNOWN`` (market features only are meaningful for them). A board only sees the symbols
of the worker that runs it (``docs/side_streams.md``).

>>> b = SectorBoard({"A": "tech", "B": "tech", "C": "energy"})
>>> for ts, sym, close in [(1, "A", 10.0), (1, "B", 20.0), (1, "C", 5.0),
...                        (2, "A", 11.0), (2, "B", 20.0), (2, "C", 5.5)]:
...     _ = b.update(sym, ts, close)
>>> [round(x, 4) for x in b.update("A", 3, 12.0)]  # A at t=3 sees the bars of t=2
[0.0477, 0.0635, 0.0477, 0.0318]
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

__all__ = ["SECTOR_FEATURES", "UNKNOWN", "SectorBoard", "SymbolReturns", "load_sector_map"]

SECTOR_FEATURES = ("sector_ret", "market_ret", "rel_sector_ret", "rel_market_ret")
UNKNOWN = "UNKNOWN"


def load_sector_map(path: Path | str | None = None) -> dict[str, str]:
    """``symbol -> sector`` from a CSV with columns ``symbol,sector`` (default: packaged map).

    The packaged ``sidestreams/data/sectors.csv`` covers the sample symbols; its source is
    in ``docs/side_streams.md``.
    """
    if path is None:
        text = resources.files("sidestreams").joinpath("data/sectors.csv").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    if rows.fieldnames is None or not {"symbol", "sector"} <= set(rows.fieldnames):
        raise ValueError(f"sector map {path or 'sectors.csv'} needs columns symbol,sector")
    return {r["symbol"].strip(): r["sector"].strip() for r in rows if r["symbol"].strip()}


@dataclass(slots=True)
class SymbolReturns:
    """A symbol's last close and its two latest one-bar returns with their bar times."""

    close: float
    ts: int
    ret: float = math.nan
    ret_ts: int | None = None
    prev: float = math.nan
    prev_ts: int | None = None

    def before(self, ts: int) -> float | None:
        """The latest return of a bar strictly before ``ts``, if known."""
        if self.ret_ts is not None and self.ret_ts < ts:
            return self.ret
        if self.prev_ts is not None and self.prev_ts < ts:
            return self.prev
        return None


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


@dataclass(slots=True)
class SectorBoard:
    """Per-symbol latest returns and the equal-weight means over sectors and market.

    The means at a time t are computed once (O(symbols)) and reused by every bar at t until
    an update changes some symbol's return before t: bars of many symbols sharing their
    timestamps cost O(1) each; trades with distinct times cost O(symbols) each.
    """

    sectors: Mapping[str, str]
    symbols: dict[str, SymbolReturns] = field(default_factory=dict)
    _at: int | None = None
    _means: tuple[dict[str, float], float] = ({}, math.nan)

    def _means_at(self, ts: int) -> tuple[dict[str, float], float]:
        if self._at != ts:
            groups: dict[str, list[float]] = {}
            market: list[float] = []
            for sym in sorted(self.symbols):  # a fixed order, whatever the arrival order
                r = self.symbols[sym].before(ts)
                if r is None:
                    continue
                market.append(r)
                groups.setdefault(self.sectors.get(sym, UNKNOWN), []).append(r)
            self._means = ({k: _mean(v) for k, v in groups.items()}, _mean(market))
            self._at = ts
        return self._means

    def adopt(self, symbol: str, returns: SymbolReturns) -> None:
        """Put a symbol's saved returns (a restored state) on the board."""
        self.symbols[symbol] = returns
        self._at = None

    def features(self, symbol: str, ts: int) -> list[float]:
        """:data:`SECTOR_FEATURES` for a bar of ``symbol`` at ``ts`` (bars before ts only)."""
        sectors, market_ret = self._means_at(ts)
        sector_ret = sectors.get(self.sectors.get(symbol, UNKNOWN), math.nan)
        own_state = self.symbols.get(symbol)
        own = own_state.before(ts) if own_state is not None else None
        own_ret = math.nan if own is None else own
        return [sector_ret, market_ret, own_ret - sector_ret, own_ret - market_ret]

    def update(self, symbol: str, ts: int, close: float) -> list[float]:
        """The features at ``ts`` (before this bar counts), then record the bar."""
        out = self.features(symbol, ts)
        state = self.symbols.get(symbol)
        if state is None:
            self.symbols[symbol] = SymbolReturns(close, ts)
        elif ts > state.ts and close > 0.0 and state.close > 0.0:
            at = self._at
            seen = state.before(at) if at is not None else None
            state.prev, state.prev_ts = state.ret, state.ret_ts
            state.ret, state.ret_ts = math.log(close / state.close), ts
            state.close, state.ts = close, ts
            if at is not None and not _same(seen, state.before(at)):
                self._at = None  # the cached means no longer hold
        return out

    def __getstate__(self) -> tuple[Mapping[str, str], dict[str, SymbolReturns]]:
        return self.sectors, self.symbols

    def __setstate__(self, state: tuple[Mapping[str, str], dict[str, SymbolReturns]]) -> None:
        self.sectors, self.symbols = state
        self._at, self._means = None, ({}, math.nan)
