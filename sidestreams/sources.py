"""Adapters that turn side data files into contract records, behind one interface.

Every adapter is a :class:`SideSource`: ``load()`` returns the records (sorted by
``published_at``) and the rejected inputs with their reasons (a bad row never stops a load).

=========================  =============================================================
:class:`FredObservations`  FRED API JSON (``series/observations``); ``realtime_start`` is
                           the publication date, so ALFRED vintages become revisions
:class:`FredCsv`           FRED's CSV download (``observation_date,SERIES``): no vintages,
                           publication by the lag rule
:class:`MacroData`         ``statsmodels.datasets.macrodata`` (US quarterly 1959Q1-2009Q3)
                           by the lag rule
:class:`NewsFile`          news headlines, JSON lines or a JSON array
=========================  =============================================================

**Publication times** (``docs/side_streams.md``). FRED gives dates, not times: a value is
published at ``release_time`` (default 08:30, when BEA and BLS release) New York time on its
``realtime_start`` date. Without vintages, the **lag rule**: a period's value is published
``lag_days`` after the period ends (default 30: BEA's advance GDP estimate comes about four
weeks after the quarter), at ``release_time`` New York time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import pandas as pd

from schemas.records import MacroObservation, NewsItem

__all__ = [
    "FredCsv",
    "FredObservations",
    "Loaded",
    "MacroData",
    "NewsFile",
    "SideSource",
    "kafka_records",
    "lagged_publication",
    "release_ms",
]

NEW_YORK = "America/New_York"
Frequency = Literal["D", "M", "Q", "A"]
R = TypeVar("R", MacroObservation, NewsItem)
T = TypeVar("T")
_PERIOD_END = {
    "D": pd.offsets.Day(0),
    "M": pd.offsets.MonthEnd(0),
    "Q": pd.offsets.QuarterEnd(0),
    "A": pd.offsets.YearEnd(0),
}


@dataclass
class Loaded(Generic[T]):
    """What an adapter read: records by publication time, and what it refused (and why)."""

    records: list[T] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


class SideSource(Protocol):
    """One side data source: its topic (``macro`` or ``news``) and its records."""

    @property
    def topic(self) -> str:
        """``macro`` or ``news``."""
        ...

    def load(self) -> Loaded[Any]:
        """Read the source; never raises on a bad row (it is rejected with a reason)."""
        ...


def release_ms(day: str | pd.Timestamp, release_time: str = "08:30") -> int:
    """Epoch ms of ``release_time`` New York time on ``day`` (a date).

    >>> release_ms("2009-10-29")  # 08:30 EDT = 12:30 UTC
    1256819400000
    """
    date = pd.Timestamp(day).strftime("%Y-%m-%d")
    local = pd.Timestamp(f"{date} {release_time}").tz_localize(NEW_YORK)
    return int(local.tz_convert("UTC").value // 1_000_000)


def lagged_publication(
    period_start: str | pd.Timestamp,
    frequency: Frequency,
    lag_days: int = 30,
    release_time: str = "08:30",
) -> int:
    """Publication time by the lag rule: ``lag_days`` after the period's last day.

    >>> from datetime import UTC, datetime
    >>> datetime.fromtimestamp(lagged_publication("2009-07-01", "Q") / 1000, UTC).isoformat()
    '2009-10-30T12:30:00+00:00'
    """
    end = pd.Timestamp(period_start) + _PERIOD_END[frequency]
    return release_ms(end + pd.Timedelta(days=lag_days), release_time)


def _by_publication(loaded: Loaded[R]) -> Loaded[R]:
    loaded.records.sort(key=lambda r: r["published_at"])  # stable: ties keep file order
    return loaded


def _float(raw: object) -> float | None:
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class FredObservations:
    """FRED API JSON (``fred/series/observations``): one record per observation row."""

    path: Path
    series_id: str
    release_time: str = "08:30"
    topic: str = "macro"

    def load(self) -> Loaded[MacroObservation]:
        """Observations with ``value`` '.' (missing) or a bad date are rejected."""
        out: Loaded[MacroObservation] = Loaded()
        try:
            rows = json.loads(Path(self.path).read_text(encoding="utf-8"))["observations"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.rejected.append(f"{self.path}: not a FRED observations file ({exc})")
            return out
        for i, row in enumerate(rows):
            try:
                value = _float(row["value"])
                published = release_ms(row["realtime_start"], self.release_time)
                period = pd.Timestamp(row["date"]).strftime("%Y-%m-%d")
            except (KeyError, TypeError, ValueError) as exc:
                out.rejected.append(f"observation {i}: {exc!r}")
                continue
            if value is None:
                out.rejected.append(f"observation {i} ({period}): missing value {row['value']!r}")
                continue
            out.records.append(
                MacroObservation(
                    series_id=self.series_id,
                    value=value,
                    reference_period=period,
                    published_at=published,
                    source=f"fred:{self.series_id}",
                )
            )
        return _by_publication(out)


def _lagged(
    rows: Iterable[tuple[str, object]],
    series_id: str,
    source: str,
    frequency: Frequency,
    lag_days: int,
    release_time: str,
) -> Loaded[MacroObservation]:
    out: Loaded[MacroObservation] = Loaded()
    for period_raw, raw in rows:
        try:
            period = pd.Timestamp(period_raw).strftime("%Y-%m-%d")
        except ValueError as exc:
            out.rejected.append(f"{series_id} {period_raw!r}: {exc}")
            continue
        value = _float(raw)
        if value is None:
            out.rejected.append(f"{series_id} {period}: missing value {raw!r}")
            continue
        out.records.append(
            MacroObservation(
                series_id=series_id,
                value=value,
                reference_period=period,
                published_at=lagged_publication(period, frequency, lag_days, release_time),
                source=source,
            )
        )
    return _by_publication(out)


@dataclass(frozen=True)
class FredCsv:
    """FRED's CSV download: a date column (``observation_date`` or ``DATE``) and one series."""

    path: Path
    series_id: str
    frequency: Frequency
    lag_days: int = 30
    release_time: str = "08:30"
    topic: str = "macro"

    def load(self) -> Loaded[MacroObservation]:
        """Rows by the lag rule; empty or '.' values are rejected."""
        try:
            df = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            return Loaded(rejected=[f"{self.path}: {exc}"])
        date_col = next((c for c in ("observation_date", "DATE") if c in df.columns), None)
        if date_col is None or self.series_id not in df.columns:
            return Loaded(rejected=[f"{self.path}: needs observation_date and {self.series_id}"])
        rows = zip(df[date_col], df[self.series_id], strict=True)
        source = f"file:{Path(self.path).name}"
        return _lagged(
            rows, self.series_id, source, self.frequency, self.lag_days, self.release_time
        )


@dataclass(frozen=True)
class MacroData:
    """``statsmodels.datasets.macrodata``: quarterly US series, published by the lag rule."""

    series: Sequence[str] = ("realgdp", "unemp", "infl", "tbilrate")
    lag_days: int = 30
    release_time: str = "08:30"
    topic: str = "macro"

    def load(self) -> Loaded[MacroObservation]:
        """One record per quarter and series; reference period = the quarter's first day."""
        from statsmodels.datasets import macrodata  # imported on use: statsmodels is slow

        df = macrodata.load_pandas().data
        starts = [
            f"{int(y):04d}-{3 * int(q) - 2:02d}-01"
            for y, q in zip(df["year"], df["quarter"], strict=True)
        ]
        out: Loaded[MacroObservation] = Loaded()
        for name in self.series:
            if name not in df.columns:
                out.rejected.append(f"macrodata has no series {name!r}")
                continue
            part = _lagged(
                zip(starts, df[name].tolist(), strict=True),
                name,
                "statsmodels:macrodata",
                "Q",
                self.lag_days,
                self.release_time,
            )
            out.records += part.records
            out.rejected += part.rejected
        return _by_publication(out)


def _published_ms(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("published_at is not a time")
    if isinstance(raw, int):
        return raw
    stamp = datetime.fromisoformat(str(raw))
    if stamp.tzinfo is None:
        raise ValueError(f"published_at {raw!r} has no time zone")
    return int(stamp.timestamp() * 1000)


@dataclass(frozen=True)
class NewsFile:
    """Headlines from JSON lines (or one JSON array): ``symbols`` (or ``symbol``),
    ``headline``, ``source``, ``published_at`` (epoch ms or ISO 8601 with zone), ``id``."""

    path: Path
    topic: str = "news"

    def load(self) -> Loaded[NewsItem]:
        """Items; one missing a field, without a symbol or with a zoneless time is rejected."""
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except OSError as exc:
            return Loaded(rejected=[f"{self.path}: {exc.strerror}"])
        out: Loaded[NewsItem] = Loaded()
        stripped = text.lstrip()
        lines = [stripped] if stripped.startswith("[") else text.splitlines()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except ValueError as exc:
                out.rejected.append(f"line {n}: not JSON ({exc})")
                continue
            for row in parsed if isinstance(parsed, list) else [parsed]:
                item = _news_item(row)
                if isinstance(item, str):
                    out.rejected.append(f"line {n}: {item}")
                else:
                    out.records.append(item)
        return _by_publication(out)


def _news_item(row: object) -> NewsItem | str:
    """A NewsItem, or the reason the row is refused."""
    if not isinstance(row, dict):
        return "not an object"
    symbols = row.get("symbols", [row["symbol"]] if "symbol" in row else [])
    if (
        not isinstance(symbols, list)
        or not symbols
        or not all(isinstance(s, str) and s for s in symbols)
    ):
        return f"no symbols in {row!r:.80}"
    headline, source = row.get("headline"), row.get("source", "file")
    if not isinstance(headline, str) or not isinstance(source, str):
        return f"headline and source must be text in {row!r:.80}"
    try:
        published = _published_ms(row["published_at"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"bad published_at: {exc}"
    ident = row.get("id")
    return NewsItem(
        symbols=list(dict.fromkeys(symbols)),
        headline=headline,
        source=source,
        published_at=published,
        id=None if ident is None else str(ident),
    )


def kafka_records(record: MacroObservation | NewsItem) -> list[tuple[str, str, Any]]:
    """``(topic, key, value)`` for publishing: macro by series, news once per symbol."""
    series = record.get("series_id")
    if isinstance(series, str):
        return [("macro", series, record)]
    symbols: list[str] = record.get("symbols", [])  # type: ignore[assignment]
    return [("news", symbol, record) for symbol in symbols]
