"""Record → row mappings of every table, and the retention settings."""

from __future__ import annotations

import pytest

from sinks import tables
from sinks.tables import MAPPINGS, mapping_for, retention_years
from tickcast.config import Settings
from tickcast.errors import ConfigError, SchemaError

PREDICTION = {
    "symbol": "AAPL", "ts": 1_700_000_000_000, "horizon": 5, "prob_up": 0.61,
    "expected_return": 0.002, "model_name": "xgb", "model_version": "7", "role": "CHAMPION",
    "feature_set_version": "836aa5c10934", "scoring_latency_ms": 1.25,
    "correlation_id": None, "produced_at": 1_700_000_000_123,
}  # fmt: skip
OUTCOME = {
    "symbol": "AAPL", "ts": 1_700_000_000_000, "horizon": 5, "model_name": "xgb",
    "model_version": "7", "role": "CHALLENGER", "prob_up": 0.4, "expected_return": -0.001,
    "realized_return": 0.003, "realized_ts": 1_700_000_300_000, "hit": False, "loss": 0.9,
    "strategy_return": -0.0031, "feature_set_version": None, "correlation_id": "c1",
}  # fmt: skip
DRIFT = {
    "feature": "rsi_14", "window_start": 0, "window_end": 86_400_000, "psi": 0.3, "ks": None,
    "n": 500, "reference_model_name": "xgb", "reference_model_version": "7",
    "feature_set_version": "v", "level": "ALERT", "symbol": None, "ks_pvalue": None,
}  # fmt: skip
EVENT = {
    "event_type": "PROMOTED", "model_name": "xgb", "version": "8", "from_version": "7",
    "role": "CHAMPION", "reason": "better", "statistics": {"p_value": 0.01, "n": 500},
    "inputs": {"test": "paired-t"}, "actor": "promoter", "ts": 5, "correlation_id": None,
}  # fmt: skip
FEATURE = {
    "symbol": "MSFT", "ts": 7, "feature_set_version": "v", "values": [1.0, float("nan")],
    "correlation_id": "abc",
}  # fmt: skip


def as_dict(mapping: tables.TableMapping, record: dict, run_id: str = "") -> dict:
    row = mapping.to_row(record, run_id)
    assert len(row) == len(mapping.columns)
    return dict(zip(mapping.columns, row, strict=True))


def test_prediction_row_keeps_ms_and_takes_run_id() -> None:
    row = as_dict(tables.PREDICTIONS, PREDICTION, "bt-42")
    assert row["ts"] == 1_700_000_000_000
    assert row["produced_at"] == 1_700_000_000_123
    assert row["run_id"] == "bt-42"
    assert row["correlation_id"] == ""
    assert row["role"] == "CHAMPION"
    assert row["model_version"] == "7"


def test_outcome_hit_is_uint8_and_run_id_default_empty() -> None:
    row = as_dict(tables.OUTCOMES, OUTCOME)
    assert row["hit"] == 0
    assert row["run_id"] == ""
    assert row["realized_ts"] == 1_700_000_300_000
    assert as_dict(tables.OUTCOMES, {**OUTCOME, "hit": True})["hit"] == 1


def test_drift_maps_reference_model_and_null_symbol() -> None:
    row = as_dict(tables.DRIFT, DRIFT)
    assert (row["model_name"], row["model_version"]) == ("xgb", "7")
    assert row["symbol"] == ""
    assert row["ks"] is None
    assert row["level"] == "ALERT"


def test_model_event_maps_maps() -> None:
    row = as_dict(tables.MODEL_EVENTS, EVENT)
    assert row["statistics"] == {"p_value": 0.01, "n": 500.0}
    assert row["inputs"] == {"test": "paired-t"}
    assert row["from_version"] == "7"


def test_feature_values_are_floats_nan_kept() -> None:
    row = as_dict(tables.FEATURES, FEATURE)
    assert row["values"][0] == 1.0
    assert row["values"][1] != row["values"][1]


@pytest.mark.parametrize(
    ("mapping", "record"),
    [
        (tables.PREDICTIONS, {**PREDICTION, "horizon": -1}),
        (tables.PREDICTIONS, {**PREDICTION, "horizon": 70_000}),
        (tables.PREDICTIONS, {k: v for k, v in PREDICTION.items() if k != "prob_up"}),
        (tables.OUTCOMES, {**OUTCOME, "ts": "yesterday"}),
        (tables.FEATURES, {**FEATURE, "values": None}),
    ],
)
def test_bad_records_raise_schema_error(mapping: tables.TableMapping, record: dict) -> None:
    with pytest.raises(SchemaError) as info:
        mapping.to_row(record)
    assert info.value.reason == "SCHEMA_MISMATCH"


def test_every_mapping_names_a_topic_and_schema() -> None:
    assert set(MAPPINGS) == {
        "ticks",
        "features",
        "predictions",
        "outcomes",
        "drift",
        "model-events",
    }
    assert mapping_for("model-events").table == "model_events"
    with pytest.raises(ConfigError):
        mapping_for("nope")


def test_retention_defaults_follow_the_design_and_settings() -> None:
    years = retention_years(Settings())
    assert years["predictions"] == 3
    assert years["outcomes"] == 3
    assert years["drift"] == 3
    assert years["ticks"] == 7
    assert years["features"] == 7
    assert years["model_events"] == 10
    custom = retention_years(Settings(retention_prediction_years=1, retention_audit_years=12))
    assert custom["predictions"] == 1
    assert custom["model_events"] == 12
