"""``--side-macro SERIES=FILE``: FRED files for some series, macrodata for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidestreams.macro_inputs import training_macro
from sidestreams.sources import FredCsv, FredObservations, MacroData

SIDE = Path(__file__).resolve().parents[2] / "fixtures" / "side"
JSON, CSV = SIDE / "fred_gdpc1_observations.json", SIDE / "fredgraph_unrate.csv"


def test_files_for_their_series_and_macrodata_for_the_rest() -> None:
    got = training_macro(("GDPC1", "UNRATE", "realgdp"), [f"GDPC1={JSON}", f"UNRATE={CSV}"])
    by = {
        s: [r for r in got.records if r["series_id"] == s] for s in ("GDPC1", "UNRATE", "realgdp")
    }
    assert by["GDPC1"] == FredObservations(JSON, "GDPC1").load().records
    assert by["UNRATE"] == FredCsv(CSV, "UNRATE", "M").load().records  # monthly, from its dates
    assert by["realgdp"] == MacroData(series=("realgdp",)).load().records
    stamps = [r["published_at"] for r in got.records]
    assert stamps == sorted(stamps)


def test_a_file_for_an_unused_series_or_a_bad_item_is_refused() -> None:
    with pytest.raises(ValueError, match="PAYEMS"):
        training_macro(("GDPC1",), [f"PAYEMS={CSV}"])
    with pytest.raises(ValueError, match="SERIES=FILE"):
        training_macro(("GDPC1",), [str(JSON)])
