"""The side-feature columns and the state that computes them, live and in training.

:class:`SideSpec` names the columns (built from its parameters, like the indicators'):

* per macro series ``S``: ``macro_S`` (latest value published at or before t) and
  ``macro_S_age_d`` (days since that publication);
* news: ``news_sent_hl{H}h`` (decayed mean VADER score, half-life H hours),
  ``news_weight_hl{H}h`` (decayed item count) and ``news_age_d`` (days since the latest item);
* with a sector map: ``sector_ret``, ``market_ret``, ``rel_sector_ret``, ``rel_market_ret``
  (:mod:`sidestreams.sector`).

:class:`SideState` holds the tables of one worker (or one training run): the macro series
(broadcast: every worker holds all), each symbol's sentiment, the sector board. ``update``
answers for a bar and records it; the macro and news tables are filled by ``add_macro`` /
``add_news`` whenever their records arrive (the as-of rules of :mod:`sidestreams.asof`).

>>> spec = SideSpec(macro_series=("realgdp",), half_life_hours=24.0)
>>> spec.names
('macro_realgdp', 'macro_realgdp_age_d', 'news_sent_hl24h', 'news_weight_hl24h', 'news_age_d')
>>> state = SideState(spec)
>>> state.add_macro({"series_id": "realgdp", "value": 1.5, "reference_period": "2009-07-01",
...                  "published_at": DAY_MS, "source": "doc"})
False
>>> state.update("AAPL", 3 * DAY_MS, 10.0)[:2]
[1.5, 2.0]
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from indicators.feature_set import FeatureSet
from schemas.records import MacroObservation, NewsItem
from sidestreams.asof import AsOfSeries, DecayedSentiment
from sidestreams.sector import SECTOR_FEATURES, SectorBoard
from sidestreams.sentiment import score_headline
from tickcast.config import Settings

__all__ = [
    "DAY_MS",
    "SideFeatureSet",
    "SideSpec",
    "SideState",
    "side_feature_columns",
    "side_version",
    "spec_from_settings",
    "worker_feature_set",
]

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(series_id: str) -> str:
    return _SLUG.sub("_", series_id.lower()).strip("_")


def _fmt(hours: float) -> str:
    return f"{hours:g}".replace(".", "p")


@dataclass(frozen=True)
class SideSpec:
    """Which side features a feature set asks for."""

    macro_series: tuple[str, ...] = ()
    half_life_hours: float = 24.0
    news: bool = True
    sectors: Mapping[str, str] | None = None
    """``symbol -> sector``; ``None`` leaves the sector features out."""
    max_records: int = 4096
    """Bound on each table's stored records (memory stays bounded whatever arrives)."""

    def __post_init__(self) -> None:
        if not (self.half_life_hours > 0.0 and math.isfinite(self.half_life_hours)):
            raise ValueError(f"half_life_hours must be > 0, got {self.half_life_hours!r}")
        slugs = [_slug(s) for s in self.macro_series]
        if len(set(slugs)) != len(slugs) or "" in slugs:
            raise ValueError(f"macro series {self.macro_series} must have distinct names")

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in the order :meth:`SideState.update` returns values."""
        out: list[str] = []
        for series in self.macro_series:
            out += [f"macro_{_slug(series)}", f"macro_{_slug(series)}_age_d"]
        if self.news:
            hl = _fmt(self.half_life_hours)
            out += [f"news_sent_hl{hl}h", f"news_weight_hl{hl}h", "news_age_d"]
        if self.sectors is not None:
            out += list(SECTOR_FEATURES)
        return tuple(out)

    @property
    def warmup_bars(self) -> int:
        """Bars of a symbol before every column can be defined (sector returns need two,
        seen from the third); macro and news columns depend on publications, not bars."""
        return 2 if self.sectors is not None else 0


def side_feature_columns(spec: SideSpec | None = None) -> tuple[tuple[str, ...], int]:
    """``(names, warm-up bars)`` of the side features, for a feature set that includes them."""
    spec = spec if spec is not None else SideSpec()
    return spec.names, spec.warmup_bars


def _age_days(ts: int, published_at: int | None) -> float:
    return math.nan if published_at is None else (ts - published_at) / DAY_MS


@dataclass
class SideState:
    """The as-of tables of one worker or one training run."""

    spec: SideSpec
    macro: dict[str, AsOfSeries] = field(default_factory=dict)
    news: dict[str, DecayedSentiment] = field(default_factory=dict)
    board: SectorBoard | None = None

    def __post_init__(self) -> None:
        if self.board is None and self.spec.sectors is not None:
            self.board = SectorBoard(self.spec.sectors)
        for series in self.spec.macro_series:
            self.macro.setdefault(series, AsOfSeries(self.spec.max_records))

    def add_macro(self, obs: MacroObservation) -> bool | None:
        """Take one observation; whether it was late, ``None`` if the spec has no such series."""
        table = self.macro.get(obs["series_id"])
        if table is None:
            return None
        if not math.isfinite(obs["value"]):
            raise ValueError(f"{obs['series_id']}: value must be finite, got {obs['value']!r}")
        return table.add(obs["published_at"], obs["value"])

    def _sentiment(self, symbol: str) -> DecayedSentiment:
        table = self.news.get(symbol)
        if table is None:
            table = DecayedSentiment(self.spec.half_life_hours * _HOUR_MS, self.spec.max_records)
            self.news[symbol] = table
        return table

    def add_news(self, item: NewsItem, symbol: str) -> bool:
        """Score the headline and add it to ``symbol``'s sentiment; whether it was late."""
        return self._sentiment(symbol).add(item["published_at"], score_headline(item["headline"]))

    def update(self, symbol: str, ts: int, close: float) -> list[float]:
        """The side features of ``symbol``'s bar at ``ts`` (in :attr:`SideSpec.names` order)."""
        out: list[float] = []
        for series in self.spec.macro_series:
            hit = self.macro[series].at(ts)
            out += [math.nan, math.nan] if hit is None else [hit[0], _age_days(ts, hit[1])]
        if self.spec.news:
            mean, weight, last = self._sentiment(symbol).at(ts)
            out += [mean, weight, _age_days(ts, last)]
        if self.board is not None:
            out += self.board.update(symbol, ts, close)
        return out


def side_version(base_version: str, spec: SideSpec) -> str:
    """12 hex chars naming the indicators' version plus the side columns and their rules.

    >>> side_version("abc", SideSpec()) == side_version("abc", SideSpec(half_life_hours=24))
    True
    >>> side_version("abc", SideSpec()) == side_version("abc", SideSpec(half_life_hours=12))
    False
    """
    body = {
        "base": base_version,
        "names": list(spec.names),
        "half_life_hours": float(spec.half_life_hours),
        "sectors": sorted((spec.sectors or {}).items()),
        "impl": "sidestreams/1",
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def spec_from_settings(settings: Settings) -> SideSpec:
    """The :class:`SideSpec` of ``TICKCAST_SIDE_*`` (``docs/side_streams.md``)."""
    from sidestreams.sector import load_sector_map

    where = settings.side_sector_map.strip()
    sectors = None if where == "none" else load_sector_map(None if where == "packaged" else where)
    series = tuple(s.strip() for s in settings.side_macro_series.split(",") if s.strip())
    return SideSpec(
        macro_series=series,
        half_life_hours=settings.side_news_half_life_h,
        sectors=sectors,
        max_records=settings.side_max_records,
    )


class SideFeatureSet(FeatureSet):
    """The indicators' feature set followed by the side columns, under a version of both.

    The worker computes it (``agents/side_inputs.py``), training joins it
    (:func:`sidestreams.frame.join_side`); models trained on it carry its version.
    """

    __slots__ = ("base_version", "side")

    def __init__(self, base: FeatureSet, spec: SideSpec) -> None:
        super().__init__(base.specs)
        self.base_version = base.version
        self.side = spec
        self.names = (*base.names, *spec.names)
        self.version = side_version(base.version, spec)


def worker_feature_set(settings: Settings) -> FeatureSet:
    """The feature set the worker computes under ``settings``: the default indicators, followed
    by the side columns when ``TICKCAST_SIDE_FEATURES`` is on (for readers of its vectors)."""
    base = FeatureSet.default()
    return SideFeatureSet(base, spec_from_settings(settings)) if settings.side_features else base
