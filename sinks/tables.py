"""Per-table mapping from decoded Avro records to ClickHouse columns, and table retention.

A :class:`TableMapping` names the Kafka topic, the Avro schema, the target table of the
migrations (``sinks/migrations``) and a pure ``to_row(record, run_id)`` that returns one tuple in
``columns`` order. Each column is the record field of the same name (or of ``renamed``), or
``run_id``; the contract's other fields are listed in ``unstored``. A unit test holds the
columns to the ``.avsc``, to the tuples and to the migrations' ``CREATE TABLE``.

Timestamps stay integer milliseconds (clickhouse-connect writes them into ``DateTime64(3)`` as
ticks, with no per-row ``datetime``); ``ingested_at`` is left to its
``DEFAULT now64(3)``, which is the ReplacingMergeTree version, so a retried batch collapses
to one row per key.

>>> row = PREDICTIONS.to_row({"symbol": "AAPL", "ts": 1, "horizon": 5, "prob_up": 0.6,
...     "expected_return": 0.01, "model_name": "xgb", "model_version": "3", "role": "CHAMPION",
...     "feature_set_version": "abc", "scoring_latency_ms": 1.5, "correlation_id": None,
...     "produced_at": 2}, "bt-1")
>>> dict(zip(PREDICTIONS.columns, row))["run_id"], dict(zip(PREDICTIONS.columns, row))["horizon"]
('bt-1', 5)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from sinks.migrations import migrate
from tickcast.config import Settings
from tickcast.errors import SchemaError

Record = Mapping[str, Any]
Row = tuple[Any, ...]
MAPPING_ERROR = "SCHEMA_MISMATCH"


@dataclass(frozen=True, slots=True)
class TableMapping:
    """How records of one topic become rows of one table."""

    table: str
    topic: str
    schema: str
    columns: tuple[str, ...]
    convert: Callable[[Record, str], Row]
    unstored: frozenset[str] = frozenset()
    """Fields of the contract the table leaves out."""
    renamed: Mapping[str, str] = field(default_factory=dict)
    """Columns named apart from their field: column -> field."""

    def to_row(self, record: Record, run_id: str = "") -> Row:
        """One row in :attr:`columns` order; a record that does not fit raises SchemaError."""
        try:
            return self.convert(record, run_id)
        except SchemaError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(
                MAPPING_ERROR, f"{self.schema} record does not map to {self.table}: {exc!r}"
            ) from exc


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _uint16(value: Any, name: str) -> int:
    number = int(value)
    if not 0 <= number <= 0xFFFF:
        raise SchemaError(MAPPING_ERROR, f"{name}={number} is outside UInt16")
    return number


def _ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(MAPPING_ERROR, f"timestamp must be integer ms, got {value!r}")
    return value


def _tick(r: Record, _run: str) -> Row:
    return (
        r["symbol"], _ms(r["ts"]), str(r["kind"]), float(r["open"]), float(r["high"]),
        float(r["low"]), float(r["close"]), float(r["volume"]), r.get("bid"), r.get("ask"),
        r["source"],
    )  # fmt: skip


def _feature(r: Record, _run: str) -> Row:
    return (
        r["symbol"], _ms(r["ts"]), r["feature_set_version"], [float(v) for v in r["values"]],
        _str(r.get("correlation_id")),
    )  # fmt: skip


def _prediction(r: Record, run_id: str) -> Row:
    return (
        r["symbol"], _ms(r["ts"]), _uint16(r["horizon"], "horizon"), r["model_name"],
        str(r["model_version"]), str(r["role"]), float(r["prob_up"]),
        float(r["expected_return"]), r["feature_set_version"], float(r["scoring_latency_ms"]),
        _str(r.get("correlation_id")), run_id, _ms(r["produced_at"]),
        [str(v) for v in r.get("explanation_features") or ()],
        [float(v) for v in r.get("explanation_contributions") or ()],
    )  # fmt: skip


def _outcome(r: Record, run_id: str) -> Row:
    return (
        r["symbol"], _ms(r["ts"]), _uint16(r["horizon"], "horizon"), r["model_name"],
        str(r["model_version"]), str(r["role"]), float(r["prob_up"]),
        float(r["expected_return"]), float(r["realized_return"]), _ms(r["realized_ts"]),
        1 if r["hit"] else 0, float(r["loss"]), float(r["strategy_return"]), run_id,
    )  # fmt: skip


def _drift(r: Record, _run: str) -> Row:
    ks, pvalue = r.get("ks"), r.get("ks_pvalue")
    return (
        r["feature"], _ms(r["window_start"]), _ms(r["window_end"]), float(r["psi"]),
        None if ks is None else float(ks), int(r["n"]), r["reference_model_name"],
        r["reference_model_version"], r["feature_set_version"], str(r["level"]),
        _str(r.get("symbol")), None if pvalue is None else float(pvalue),
    )  # fmt: skip


def _model_event(r: Record, _run: str) -> Row:
    return (
        str(r["event_type"]), r["model_name"], str(r["version"]), r.get("from_version"),
        str(r["role"]), r["reason"], {str(k): float(v) for k, v in r["statistics"].items()},
        {str(k): str(v) for k, v in r["inputs"].items()}, r["actor"], _ms(r["ts"]),
        _str(r.get("correlation_id")),
    )  # fmt: skip


TICKS = TableMapping(
    "ticks", "ticks", "Tick",
    ("symbol", "ts", "kind", "open", "high", "low", "close", "volume", "bid", "ask", "source"),
    _tick,
    unstored=frozenset({"price", "bid_size", "ask_size", "interval_ms", "sequence",
                        "correlation_id"}),
)  # fmt: skip
FEATURES = TableMapping(
    "features", "features", "FeatureVector",
    ("symbol", "ts", "feature_set_version", "values", "correlation_id"),
    _feature,
    unstored=frozenset({"source_topic", "source_partition", "source_offset"}),
)  # fmt: skip
PREDICTIONS = TableMapping(
    "predictions", "predictions", "Prediction",
    ("symbol", "ts", "horizon", "model_name", "model_version", "role", "prob_up",
     "expected_return", "feature_set_version", "scoring_latency_ms", "correlation_id", "run_id",
     "produced_at", "explanation_features", "explanation_contributions"),
    _prediction,
)  # fmt: skip
OUTCOMES = TableMapping(
    "outcomes", "outcomes", "Outcome",
    ("symbol", "ts", "horizon", "model_name", "model_version", "role", "prob_up",
     "expected_return", "realized_return", "realized_ts", "hit", "loss", "strategy_return",
     "run_id"),
    _outcome,
    unstored=frozenset({"feature_set_version", "correlation_id", "features"}),
)  # fmt: skip
DRIFT = TableMapping(
    "drift", "drift", "DriftStat",
    ("feature", "window_start", "window_end", "psi", "ks", "n", "model_name", "model_version",
     "feature_set_version", "level", "symbol", "ks_pvalue"),
    _drift,
    renamed={"model_name": "reference_model_name", "model_version": "reference_model_version"},
)  # fmt: skip
MODEL_EVENTS = TableMapping(
    "model_events", "model-events", "ModelEvent",
    ("event_type", "model_name", "version", "from_version", "role", "reason", "statistics",
     "inputs", "actor", "ts", "correlation_id"),
    _model_event,
)  # fmt: skip

#: Every mapping, by logical topic.
MAPPINGS: dict[str, TableMapping] = {
    m.topic: m for m in (TICKS, FEATURES, PREDICTIONS, OUTCOMES, DRIFT, MODEL_EVENTS)
}


def mapping_for(topic: str) -> TableMapping:
    """The mapping of a logical topic; a topic without one is a configuration error."""
    try:
        return MAPPINGS[topic]
    except KeyError:
        from tickcast.errors import ConfigError

        raise ConfigError(
            f"TICKCAST_SINK_TOPICS: no ClickHouse table for topic {topic!r}; "
            f"known: {', '.join(sorted(MAPPINGS))}"
        ) from None


# --- retention ------------------------------------------------------------------------------
#: Retention class of every table: which Settings field holds its TTL in years.
RETENTION: dict[str, str] = {
    "ticks": "retention_market_data_years",
    "features": "retention_market_data_years",
    "predictions": "retention_prediction_years",
    "outcomes": "retention_prediction_years",
    "drift": "retention_prediction_years",
    "model_metrics": "retention_prediction_years",
    "model_events": "retention_audit_years",
}
_TTL_YEARS = re.compile(r"TTL toDateTime\(ingested_at\) \+ toIntervalYear\((\d+)\)")


def retention_years(settings: Settings) -> dict[str, int]:
    """The configured TTL in years of every table."""
    return {table: int(getattr(settings, field)) for table, field in RETENTION.items()}


def apply_retention(client: Client, database: str, settings: Settings) -> dict[str, int]:
    """Align each table's TTL with Settings (``ALTER TABLE ... MODIFY TTL``); idempotent.

    Returns the tables whose TTL changed now, with their new years. The TTL runs on
    ``ingested_at`` (replays of old data are not purged on arrival).
    """
    engines: dict[str, str] = {
        str(name): str(engine)
        for name, engine in client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = %(db)s",
            parameters={"db": database},
        ).result_rows
    }
    changed: dict[str, int] = {}
    for table, years in retention_years(settings).items():
        if table not in engines:
            continue
        found = _TTL_YEARS.search(engines[table])
        if found and int(found.group(1)) == years:
            continue
        client.command(
            f"ALTER TABLE {database}.{table} "
            f"MODIFY TTL toDateTime(ingested_at) + INTERVAL {years} YEAR"
        )
        changed[table] = years
    return changed


def prepare_tables(client: Client, settings: Settings) -> dict[str, object]:
    """The sink's migrate step: versioned migrations, then retention from Settings."""
    database = settings.clickhouse_database
    applied = migrate(client, database)
    retention = apply_retention(client, database, settings)
    return {"migrations": applied, "retention": retention}
