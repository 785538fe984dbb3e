"""Named, versioned feature sets: ``classic``, ``alpha158`` and their union.

A model records the name and version of the set it was trained on; a worker builds the set
it serves by name (:func:`union_of` for several models). The version is the
:class:`~indicators.feature_set.FeatureSet` hash of the definition, so it changes whenever
a column's formula does. ``warmup`` is the number of bars after which no column is ``NaN``
by construction (a quote feature can still be ``NaN`` on a feed without quotes).

>>> [(d["name"], d["count"], d["warmup"]) for d in describe()]
[('classic', 41, 61), ('alpha158', 158, 61), ('classic+alpha158', 199, 61)]
"""

from __future__ import annotations

from collections.abc import Iterable

from indicators.errors import FeatureSetError
from indicators.feature_set import DEFAULT_SPECS, FeatureSet, IndicatorSpec, spec

ALPHA158_SPECS: tuple[IndicatorSpec, ...] = (spec("alpha158"),)

#: The named sets, in listing order; a union is the members' specs in this order.
SPECS: dict[str, tuple[IndicatorSpec, ...]] = {
    "classic": DEFAULT_SPECS,
    "alpha158": ALPHA158_SPECS,
    "classic+alpha158": DEFAULT_SPECS + ALPHA158_SPECS,
}

_BASE = ("classic", "alpha158")


def feature_set(name: str) -> FeatureSet:
    """The named set; :class:`FeatureSetError` names the known ones."""
    try:
        return FeatureSet(SPECS[name])
    except KeyError:
        raise FeatureSetError(f"unknown feature set {name!r} (known: {', '.join(SPECS)})") from None


def union_of(names: Iterable[str]) -> str:
    """The name of the smallest set holding every named one (what a worker must compute).

    >>> union_of(["alpha158", "classic", "alpha158"])
    'classic+alpha158'
    >>> union_of(["classic"])
    'classic'
    """
    wanted = set()
    for name in names:
        if name not in SPECS:
            raise FeatureSetError(f"unknown feature set {name!r} (known: {', '.join(SPECS)})")
        wanted.update(name.split("+"))
    if not wanted:
        return "classic"
    return "+".join(n for n in _BASE if n in wanted)


def contained(name: str) -> tuple[str, ...]:
    """The named sets whose every column ``name``'s set computes with the same formula.

    A model trained on one of them can score on a stream computing ``name`` (it reads its
    own columns by name).

    >>> contained("classic+alpha158")
    ('classic', 'alpha158', 'classic+alpha158')
    >>> contained("alpha158")
    ('alpha158',)
    """
    union_of([name])  # refuses an unknown name
    parts = set(name.split("+"))
    return tuple(n for n in SPECS if set(n.split("+")) <= parts)


def name_of(version: str) -> str | None:
    """The named set with this ``version`` (``None``: not a named set's).

    >>> name_of(feature_set("alpha158").version)
    'alpha158'
    >>> name_of("0" * 12) is None
    True
    """
    return next((n for n in SPECS if feature_set(n).version == version), None)


def warmup_of(fs: FeatureSet) -> int:
    """Bars after which no column of ``fs`` is ``NaN`` by construction."""
    return max(
        max(ind.warmup, getattr(ind, "defined_after", 0)) for ind in fs.new_state().indicators
    )


def describe() -> list[dict[str, object]]:
    """Name, column count, version and warm-up of every named set."""
    out: list[dict[str, object]] = []
    for name in SPECS:
        fs = feature_set(name)
        out.append({"name": name, "count": len(fs), "version": fs.version, "warmup": warmup_of(fs)})
    return out
