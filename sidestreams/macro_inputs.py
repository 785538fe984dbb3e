"""Macro records for training: FRED files given as ``SERIES=FILE``, macrodata for the rest.

``tickcast train --side --side-macro GDPC1=gdpc1.json --side-macro UNRATE=unrate.csv`` takes
each named series from its file (FRED API JSON when the name ends in ``.json``, with its
vintages as published; otherwise FRED's CSV download, published by the lag rule with the
frequency its dates step by) and every other series of ``TICKCAST_SIDE_MACRO_SERIES`` from
statsmodels macrodata, as before.

>>> csv_frequency(["2009-01-01", "2009-02-01", "2009-03-01"])
'M'
>>> csv_frequency(["2009-01-01", "2009-04-01"])
'Q'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from schemas.records import MacroObservation
from sidestreams.sources import FredCsv, FredObservations, Frequency, Loaded, MacroData

__all__ = ["csv_frequency", "parse_item", "training_macro"]


def csv_frequency(dates: Sequence[str]) -> Frequency:
    """D, M, Q or A from the median step between observation dates (D below 25 days)."""
    stamps = pd.to_datetime(pd.Series(list(dates)), errors="coerce").dropna().sort_values()
    step = float(stamps.diff().dt.days.median()) if len(stamps) > 1 else 1.0
    return "D" if step < 25 else "M" if step < 80 else "Q" if step < 300 else "A"


def parse_item(item: str) -> tuple[str, Path]:
    """``SERIES=FILE`` -> ``(series, path)``; :class:`ValueError` names the expected form.

    >>> parse_item("GDPC1=data/gdpc1.json")
    ('GDPC1', PosixPath('data/gdpc1.json'))
    """
    series, sep, path = item.partition("=")
    if not sep or not series.strip() or not path.strip():
        raise ValueError(f"--side-macro takes SERIES=FILE, got {item!r}")
    return series.strip(), Path(path.strip())


def _load_file(series: str, path: Path, lag_days: int) -> Loaded[MacroObservation]:
    if path.suffix.lower() == ".json":
        return FredObservations(path, series).load()
    try:
        dates = pd.read_csv(path, dtype=str, keep_default_na=False).iloc[:, 0].tolist()
    except (OSError, ValueError) as exc:
        return Loaded(rejected=[f"{path}: {exc}"])
    return FredCsv(path, series, csv_frequency(dates), lag_days).load()


def training_macro(
    series: Sequence[str], items: Sequence[str] = (), lag_days: int = 30
) -> Loaded[MacroObservation]:
    """The records of ``series``: those named in ``items`` from their files, the rest from
    macrodata; sorted by publication time. A file for a series not in ``series`` is refused."""
    files = dict(parse_item(i) for i in items)
    unused = sorted(set(files) - set(series))
    if unused:
        raise ValueError(f"--side-macro series {unused} are not in TICKCAST_SIDE_MACRO_SERIES")
    out: Loaded[MacroObservation] = Loaded()
    rest = [s for s in series if s not in files]
    if rest:
        out = MacroData(series=rest, lag_days=lag_days).load()
    for name, path in files.items():
        part = _load_file(name, path, lag_days)
        out.records += part.records
        out.rejected += part.rejected
    out.records.sort(key=lambda r: r["published_at"])  # stable: ties keep file order
    return out
