"""The side-data adapters on real macro data (statsmodels) and FRED-format fixtures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidestreams.sources import (
    FredCsv,
    FredObservations,
    MacroData,
    NewsFile,
    SideSource,
    kafka_records,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "side"


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def test_macrodata_quarters_become_reference_periods_published_by_the_lag_rule() -> None:
    source: SideSource = MacroData(series=("realgdp", "unemp"))
    loaded = source.load()
    assert loaded.rejected == []
    gdp = [r for r in loaded.records if r["series_id"] == "realgdp"]
    assert len(gdp) == 203  # 1959Q1 .. 2009Q3
    first, last = gdp[0], gdp[-1]
    assert (first["reference_period"], first["value"]) == ("1959-01-01", 2710.349)
    assert (last["reference_period"], last["value"]) == ("2009-07-01", 12990.341)
    # Q3 ends 2009-09-30; + 30 days = 2009-10-30, 08:30 New York (EDT) = 12:30 UTC
    assert _utc(last["published_at"]) == "2009-10-30T12:30:00+00:00"
    # Q4 1959 ends 1959-12-31: 1960-01-30 08:30 EST = 13:30 UTC
    assert _utc(gdp[3]["published_at"]) == "1960-01-30T13:30:00+00:00"
    pubs = [r["published_at"] for r in loaded.records]
    assert pubs == sorted(pubs)
    assert {r["source"] for r in loaded.records} == {"statsmodels:macrodata"}
    assert MacroData(series=("nope",)).load().rejected == ["macrodata has no series 'nope'"]


def test_fred_observations_use_realtime_start_as_publication_and_keep_revisions() -> None:
    loaded = FredObservations(FIXTURES / "fred_gdpc1_observations.json", "GDPC1").load()
    assert loaded.rejected == ["observation 6 (2010-01-01): missing value '.'"]
    q3 = [r for r in loaded.records if r["reference_period"] == "2009-07-01"]
    assert [(_utc(r["published_at"]), r["value"]) for r in q3] == [
        ("2009-10-29T12:30:00+00:00", 12990.341),  # advance estimate
        ("2009-11-24T13:30:00+00:00", 12973.0),  # second estimate (EST from November)
    ]
    assert len(loaded.records) == 8
    assert all(r["source"] == "fred:GDPC1" for r in loaded.records)


def test_fred_observations_refuse_a_file_that_is_not_fred(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"seriess": []}')
    loaded = FredObservations(bad, "X").load()
    assert loaded.records == []
    assert "not a FRED observations file" in loaded.rejected[0]


def test_fred_csv_monthly_by_the_lag_rule() -> None:
    loaded = FredCsv(FIXTURES / "fredgraph_unrate.csv", "UNRATE", "M", lag_days=7).load()
    assert loaded.rejected == ["UNRATE 2009-09-01: missing value '.'"]
    june = loaded.records[0]
    assert june["reference_period"] == "2009-06-01"
    assert june["value"] == 9.5
    assert _utc(june["published_at"]) == "2009-07-07T12:30:00+00:00"  # June 30 + 7 days
    assert len(loaded.records) == 5


def test_news_file_reads_items_and_rejects_bad_rows_with_reasons() -> None:
    loaded = NewsFile(FIXTURES / "news_headlines.jsonl").load()
    assert len(loaded.records) == 10
    assert len(loaded.rejected) == 3
    assert "no time zone" in loaded.rejected[0]
    assert "no symbols" in loaded.rejected[1]
    assert "not JSON" in loaded.rejected[2]
    first = loaded.records[0]
    assert first["id"] == "n5"
    assert _utc(first["published_at"]) == "2009-10-14T11:00:00+00:00"
    ipad = [r for r in loaded.records if "iPad" in r["headline"]]
    assert ipad[0]["symbols"] == ["AAPL"]
    assert ipad[0]["id"] is None
    both = next(r for r in loaded.records if r["id"] == "n3")
    assert [key for _, key, _ in kafka_records(both)] == ["AAPL", "MSFT"]


@pytest.mark.parametrize("name", ["missing.jsonl"])
def test_a_missing_news_file_is_a_rejection_not_a_crash(tmp_path: Path, name: str) -> None:
    loaded = NewsFile(tmp_path / name).load()
    assert loaded.records == []
    assert len(loaded.rejected) == 1


def test_macro_records_are_keyed_by_series() -> None:
    record = MacroData(series=("infl",)).load().records[0]
    assert kafka_records(record) == [("macro", "infl", record)]
