"""Named feature sets with the side columns: any indicators' set followed by ``+side``.

``indicators.feature_sets`` names the indicator sets (``classic``, ``alpha158``,
``classic+alpha158``); a ``+side`` suffix appends the side columns of ``TICKCAST_SIDE_*``
(:class:`~sidestreams.features.SideFeatureSet`: macro, news, sector), so ``classic+side`` is
a set like the others: a model trained on it records the name, ``tickcast featuresets`` lists
it with its version and warm-up, ``TICKCAST_FEATURE_SET=classic+side`` makes the worker
compute it, and a reader of the stream's vectors (the API, drift) finds its column names by
the version a vector carries (:func:`names_for_version`). The side part's version depends on
the side settings (macro series, half-life, sector map): the name says *which* columns, the
version *which* formulas.

>>> split("classic+alpha158+side")
('classic+alpha158', True)
>>> union(["classic+side", "alpha158"])
'classic+alpha158+side'
>>> contained("classic+side")
('classic', 'classic+side')
"""

from __future__ import annotations

from collections.abc import Iterable

from indicators import feature_sets as base_sets
from indicators.feature_set import FeatureSet
from sidestreams.features import SideFeatureSet, spec_from_settings
from tickcast.config import Settings

__all__ = ["SIDE", "configured", "contained", "describe", "named", "names_for_version", "split"]

SIDE = "side"
_SUFFIX = f"+{SIDE}"


def split(name: str) -> tuple[str, bool]:
    """``(indicators' set, with side columns)``; an unknown base is refused by :func:`named`."""
    name = name.strip()
    if name == SIDE:
        return "classic", True
    if name.endswith(_SUFFIX):
        return name[: -len(_SUFFIX)], True
    return name, False


def join(base: str, side: bool) -> str:
    """The name of ``base`` with (or without) the side columns.

    >>> join("alpha158", True)
    'alpha158+side'
    """
    return f"{base}{_SUFFIX}" if side else base


def named(name: str, settings: Settings) -> FeatureSet:
    """The named set; the side columns (``+side``) follow ``settings``' ``TICKCAST_SIDE_*``.
    :class:`~indicators.errors.FeatureSetError` names the known sets."""
    base, side = split(name)
    fs = base_sets.feature_set(base)
    return SideFeatureSet(fs, spec_from_settings(settings)) if side else fs


def union(names: Iterable[str]) -> str:
    """The smallest named set holding every named one (what a worker must compute)."""
    parts = [split(n) for n in names]
    return join(base_sets.union_of(b for b, _ in parts), any(s for _, s in parts))


def contained(name: str) -> tuple[str, ...]:
    """The named sets whose models score on a stream computing ``name`` (by column name)."""
    base, side = split(name)
    inner = base_sets.contained(base)
    return inner + tuple(join(n, True) for n in inner) if side else inner


def configured(settings: Settings, chosen: str | None = None) -> str:
    """The set a worker computes: ``chosen`` (else ``TICKCAST_FEATURE_SET``, else classic),
    with the side columns when the name asks for them or ``TICKCAST_SIDE_FEATURES`` is on."""
    base, side = split(chosen or settings.feature_set.strip() or "classic")
    return join(base, side or settings.side_features)


def describe(settings: Settings) -> list[dict[str, object]]:
    """Name, column count, version and warm-up of every named set, each also with ``+side``."""
    spec = spec_from_settings(settings)
    out: list[dict[str, object]] = []
    for row in base_sets.describe():
        out.append(row)
        name = str(row["name"])
        fs = named(join(name, True), settings)
        warmup = max(int(str(row["warmup"])), spec.warmup_bars)
        out.append({"name": join(name, True), "count": len(fs), "version": fs.version,
                    "warmup": warmup})  # fmt: skip
    return out


def names_for_version(version: str, settings: Settings) -> tuple[str, ...] | None:
    """Column names of the named set with this ``version`` under ``settings`` (``None``: not a
    named set's, e.g. side columns of other ``TICKCAST_SIDE_*`` settings)."""
    for name in base_sets.SPECS:
        for candidate in (name, join(name, True)):
            fs = named(candidate, settings)
            if fs.version == version:
                return tuple(fs.names)
    return None
