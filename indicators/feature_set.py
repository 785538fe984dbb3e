"""The feature set, declared in one place, and the per-symbol state that computes it.

:data:`DEFAULT_SPECS` below is *the* definition of the default features. A
:class:`FeatureSet` turns a list of :class:`IndicatorSpec` into feature ``names`` (built
from the parameters: ``rsi_14``, ``bb_upper_20_2``, ``ret_5``), a ``version`` (12 hex chars
of blake2b over the canonical definition and :data:`IMPL_REVISION`) and fresh per-symbol
:class:`SymbolState` copies of one prototype.

Feature vectors are ``list[float]`` in ``names`` order, with ``NaN`` for warm-up or
undefined values (e.g. no quotes); they pack directly into float64 arrays.

>>> fs = FeatureSet.default()
>>> len(fs.names) >= 40, len(fs.version)
(True, 12)
>>> state = fs.new_state()
>>> vec = state.update(Bar(1_700_000_000_000, 10.0, 10.5, 9.5, 10.2, 1000.0))
>>> len(vec) == len(fs.names), state.ready
(True, False)
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, Protocol

from indicators.alpha158.state import Alpha158
from indicators.bar import Bar, check_bar
from indicators.base import CloseIndicator, Indicator
from indicators.errors import FeatureSetError, InvalidBarError
from indicators.microstructure import Quotes
from indicators.momentum import RSI, LogReturn, Stochastic
from indicators.trend import EMA, MACD, SMA
from indicators.volatility import ATR, BollingerBands, Donchian, RealizedVol
from indicators.volume import OBV, VWAP, SessionVWAP, VolumeZScore

#: Bump when an indicator's formula or convention changes, so that the version changes too.
IMPL_REVISION = "indicators/1"

REGISTRY: dict[str, type[Indicator]] = {
    cls.kind: cls
    for cls in (
        SMA,
        EMA,
        MACD,
        RSI,
        Stochastic,
        LogReturn,
        BollingerBands,
        ATR,
        RealizedVol,
        Donchian,
        OBV,
        VWAP,
        SessionVWAP,
        VolumeZScore,
        Quotes,
        Alpha158,
    )
}

_NANS = {k: (math.nan,) * k for k in range(1, 9)}
_OUT = attrgetter("out")


@dataclass(frozen=True)
class IndicatorSpec:
    """One indicator of a feature set: its registry ``kind`` and constructor parameters."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, **params: Any) -> IndicatorSpec:
        """``IndicatorSpec.of("rsi", period=14)``."""
        return cls(kind, tuple(sorted(params.items())))

    def build(self) -> Indicator:
        """A fresh indicator; :class:`FeatureSetError` for an unknown kind or bad params."""
        try:
            cls = REGISTRY[self.kind]
        except KeyError:
            known = ", ".join(sorted(REGISTRY))
            raise FeatureSetError(f"unknown indicator {self.kind!r} (known: {known})") from None
        try:
            return cls(**dict(self.params))
        except (TypeError, ValueError) as exc:
            raise FeatureSetError(f"{self.kind} {dict(self.params)}: {exc}") from exc


def spec(kind: str, **params: Any) -> IndicatorSpec:
    """Shorthand for :meth:`IndicatorSpec.of`."""
    return IndicatorSpec.of(kind, **params)


#: The default feature set: 41 features. Changing anything here changes the version.
DEFAULT_SPECS: tuple[IndicatorSpec, ...] = (
    *(spec("ret", horizon=h) for h in (1, 5, 10, 20, 60)),
    *(spec("sma", period=p) for p in (5, 10, 20, 50)),
    *(spec("ema", period=p) for p in (12, 26, 50)),
    *(spec("rsi", period=p) for p in (7, 14)),
    spec("macd", fast=12, slow=26, signal=9),
    spec("bb", period=20, k=2.0),
    spec("atr", period=14),
    spec("stoch", fastk=14, slowk=3, slowd=3),
    *(spec("donchian", period=p) for p in (20, 55)),
    spec("obv"),
    spec("vwap", window=20),
    spec("vwap_session"),
    *(spec("rvol", window=w) for w in (10, 20)),
    spec("vol_z", window=20),
    spec("quotes"),
)


class Columns(Protocol):
    """What a :class:`SymbolState` needs of the columns holding it as a row
    (:class:`indicators.columns.ClassicColumns`; a protocol: that package imports this one)."""

    @property
    def width(self) -> int: ...

    def queue(self, row: int, bar: Bar) -> None: ...

    def store(self, row: int, state: SymbolState) -> None: ...

    def detach(self, row: int) -> None: ...


class SymbolState:
    """Every indicator of a feature set for one symbol: a small picklable value.

    Create it with :meth:`FeatureSet.new_state`. :meth:`update` refuses (with
    :class:`InvalidBarError`, leaving the state unchanged) a bad bar or one whose ``ts_ms``
    is not after the last applied bar, so replaying already-applied bars is harmless.
    Pickles to a few kB (the indicators' fixed ring buffers and sums) whatever the history.
    """

    __slots__ = (
        "_bar_fns",
        "_close_fns",
        "_columns",
        "_indicators",
        "_last_ts",
        "_n",
        "_row",
        "_warmup",
        "version",
    )

    def __init__(self, indicators: Sequence[Indicator], version: str) -> None:
        self._indicators = tuple(indicators)
        self._warmup = max((i.warmup for i in indicators), default=0)
        self._n = 0
        self._last_ts: int | None = None
        self.version = version
        self._columns: Columns | None = None
        self._row = -1
        self._bind()

    def _bind(self) -> None:
        # Bound methods, rebuilt after unpickling (never pickled): the hot loop calls them
        # without attribute look-ups, and hands close-only indicators the close directly.
        inds = self._indicators
        self._close_fns = tuple(i.update for i in inds if isinstance(i, CloseIndicator))
        self._bar_fns = tuple(i.update_bar for i in inds if not isinstance(i, CloseIndicator))

    def __getstate__(self) -> tuple[Any, ...]:
        if self._columns is not None:  # the row holds the state: write it back first
            self._columns.store(self._row, self)
        return (self._indicators, self._last_ts, self._n, self._warmup, self.version)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._indicators, self._last_ts, self._n, self._warmup, self.version = state
        self._columns = None
        self._row = -1
        self._bind()

    @property
    def columns(self) -> Columns | None:
        """The :class:`~indicators.columns.ClassicColumns` holding this state as a row
        (its bars are queued there), or ``None`` (updated here, per symbol)."""
        return self._columns

    def attach_columns(self, columns: Columns, row: int) -> None:
        """Let ``columns`` (which loaded this state into ``row``) hold it from now on."""
        self._columns, self._row = columns, row

    def detach_columns(self) -> None:
        """Take the state back from its columns (written back first): per symbol again."""
        columns = self._columns
        if columns is not None:
            columns.store(self._row, self)
            columns.detach(self._row)
            self._columns, self._row = None, -1

    @property
    def ready(self) -> bool:
        """True once every indicator is past its warm-up (quote features may still be NaN)."""
        return self._n >= self._warmup

    @property
    def last_ts(self) -> int | None:
        """Event time of the last applied bar."""
        return self._last_ts

    @property
    def indicators(self) -> tuple[Indicator, ...]:
        """The indicators, in feature-set order (read them, do not update them)."""
        return self._indicators

    def replace(self, index: int, indicator: Indicator) -> None:
        """Put ``indicator`` (same kind and outputs) in place of the ``index``-th one.

        For :class:`~indicators.alpha158.rows.BatchRows`, which swaps a symbol's Alpha158 for
        a row of a vectorised engine.
        """
        old = self._indicators[index]
        if indicator.kind != old.kind or indicator.n_outputs != old.n_outputs:
            raise ValueError(f"cannot replace a {old.kind!r} by a {indicator.kind!r}")
        inds = list(self._indicators)
        inds[index] = indicator
        self._indicators = tuple(inds)
        self._bind()

    def update(self, bar: Bar, same_ts_ok: bool = False) -> list[float]:
        """Apply ``bar`` and return the feature vector (``NaN`` = warm-up or undefined).

        ``same_ts_ok`` accepts an event at the last applied time: several trades print in
        the same millisecond, and a stream that validates duplicates itself (by sequence
        and offset) passes True; bar series keep the strict default.
        """
        last = self._last_ts
        if last is not None and (bar.ts_ms < last or (bar.ts_ms == last and not same_ts_ok)):
            reason = "duplicate" if bar.ts_ms == last else "out_of_order"
            raise InvalidBarError(reason, f"ts_ms {bar.ts_ms} <= last applied {last}")
        check_bar(bar)
        self._last_ts = bar.ts_ms
        columns = self._columns
        if columns is not None:  # filled in place by the columns' flush
            columns.queue(self._row, bar)
            return [math.nan] * columns.width
        return self.apply(bar)

    def apply(self, bar: Bar) -> list[float]:
        """Update the indicators with a checked bar (what :meth:`update` does once the bar
        passed its checks); the feature vector."""
        close = bar.close
        for f in self._close_fns:
            f(close)
        for g in self._bar_fns:
            g(bar)
        if self._n >= self._warmup:
            return list(chain.from_iterable(map(_OUT, self._indicators)))
        self._n += 1
        out: list[float] = []
        for ind in self._indicators:
            out.extend(ind.out if ind._n >= ind.warmup else _NANS[ind.n_outputs])
        return out


class FeatureSet:
    """An ordered list of indicator specs with names, a version and a state prototype."""

    __slots__ = ("_proto", "names", "specs", "version", "warmup")

    def __init__(self, specs: Iterable[IndicatorSpec]) -> None:
        self.specs = tuple(specs)
        if not self.specs:
            raise FeatureSetError("a feature set needs at least one indicator")
        indicators = [s.build() for s in self.specs]
        names = tuple(n for ind in indicators for n in ind.names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FeatureSetError(f"duplicate feature names: {dupes}")
        self.names: tuple[str, ...] = names
        self.warmup = max(ind.warmup for ind in indicators)
        self.version = hashlib.blake2b(
            self.canonical(indicators).encode(), digest_size=6
        ).hexdigest()
        self._proto = pickle.dumps(SymbolState(indicators, self.version), pickle.HIGHEST_PROTOCOL)

    @classmethod
    def default(cls) -> FeatureSet:
        """The default feature set (:data:`DEFAULT_SPECS`)."""
        return cls(DEFAULT_SPECS)

    @classmethod
    def from_definition(cls, definition: Sequence[Mapping[str, Any]]) -> FeatureSet:
        """Rebuild from :meth:`definition` output (e.g. stored beside a model)."""
        try:
            return cls(spec(d["kind"], **d.get("params", {})) for d in definition)
        except (KeyError, TypeError, AttributeError) as exc:
            raise FeatureSetError(f"bad feature-set definition: {exc!r}") from exc

    def definition(self) -> list[dict[str, Any]]:
        """JSON-able list of ``{"kind", "params"}``, with parameters as normalised."""
        return [{"kind": s.kind, "params": s.build().params()} for s in self.specs]

    def canonical(self, indicators: Sequence[Indicator] | None = None) -> str:
        """The canonical JSON text the version hashes."""
        inds = indicators if indicators is not None else [s.build() for s in self.specs]
        body = [{"kind": i.kind, "params": i.params()} for i in inds]
        return json.dumps(
            {"impl": IMPL_REVISION, "specs": body}, sort_keys=True, separators=(",", ":")
        )

    def new_state(self) -> SymbolState:
        """A fresh, independent state for one symbol."""
        state: SymbolState = pickle.loads(self._proto)
        return state

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"FeatureSet({len(self.names)} features, version={self.version})"
