"""Named feature sets with the side columns (``NAME+side``), as listed, chosen and resolved."""

from __future__ import annotations

import pytest

from indicators.errors import FeatureSetError
from indicators.feature_sets import SPECS, feature_set
from sidestreams import feature_sets
from sidestreams.features import SideFeatureSet, spec_from_settings
from tickcast.config import Settings

SETTINGS = Settings(side_macro_series="realgdp,unemp")


def test_a_side_set_is_its_base_followed_by_the_side_columns() -> None:
    for base in SPECS:
        fs = feature_sets.named(f"{base}+side", SETTINGS)
        want = SideFeatureSet(feature_set(base), spec_from_settings(SETTINGS))
        assert (fs.names, fs.version) == (want.names, want.version)
        assert fs.names[: len(feature_set(base))] == feature_set(base).names
        assert "macro_unemp_age_d" in fs.names
        assert "rel_market_ret" in fs.names
        assert feature_sets.named(base, SETTINGS).version == feature_set(base).version
    with pytest.raises(FeatureSetError, match="known: classic"):
        feature_sets.named("alpha360+side", SETTINGS)


def test_every_listed_set_resolves_from_its_version() -> None:
    rows = feature_sets.describe(SETTINGS)
    assert [r["name"] for r in rows][:2] == ["classic", "classic+side"]
    assert len(rows) == 2 * len(SPECS)
    for row in rows:
        fs = feature_sets.named(str(row["name"]), SETTINGS)
        assert (row["count"], row["version"]) == (len(fs), fs.version)
        assert feature_sets.names_for_version(fs.version, SETTINGS) == tuple(fs.names)
    other = Settings(side_macro_series="realgdp")  # other side columns: another version
    side = feature_sets.named("classic+side", other)
    assert feature_sets.names_for_version(side.version, SETTINGS) is None


def test_union_containment_and_the_side_switch() -> None:
    assert feature_sets.union(["alpha158+side", "classic"]) == "classic+alpha158+side"
    assert feature_sets.union(["alpha158", "classic"]) == "classic+alpha158"
    assert feature_sets.contained("alpha158+side") == ("alpha158", "alpha158+side")
    assert feature_sets.configured(Settings()) == "classic"
    assert feature_sets.configured(Settings(side_features=True)) == "classic+side"
    assert feature_sets.configured(Settings(feature_set="alpha158+side")) == "alpha158+side"
    assert feature_sets.configured(Settings(side_features=True), "alpha158") == "alpha158+side"
