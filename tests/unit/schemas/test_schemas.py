"""The Avro contracts themselves: documented, evolvable, parseable, and pinned."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastavro import parse_schema

from schemas import AVRO_DIR, NAMESPACE
from schemas.compat import compatibility_problems, is_compatible
from streams.codec import AvroCodec, load_schema, schema_names

EXPECTED = {
    "dead_letter": "DeadLetter",
    "drift_stat": "DriftStat",
    "feature_vector": "FeatureVector",
    "macro_observation": "MacroObservation",
    "model_event": "ModelEvent",
    "news_item": "NewsItem",
    "outcome": "Outcome",
    "prediction": "Prediction",
    "tick": "Tick",
}
# Changing a schema changes its fingerprint, and every consumer must then know the new
# version: update a pin only together with docs/schemas.md and a compatible evolution.
PINNED_FINGERPRINTS = {
    "dead_letter": "ddb6776f1d1e31ee",
    "drift_stat": "d66477c3eed86f5f",
    "feature_vector": "329689d40f2c2e60",
    "macro_observation": "9a0c38e910a81ed5",
    "model_event": "d4481c9c2c3bdf07",
    "news_item": "6e0da0f3c858259b",
    "outcome": "6a3445b26b1af59b",
    "prediction": "f0b255551d1b51bc",
    "tick": "3f491c832fd3e256",
}
TIMESTAMP_FIELDS = {"ts", "failed_at", "event_ts", "realized_ts", "produced_at", "published_at"} | {
    "window_start",
    "window_end",
}


def _named_types(schema: Any) -> Iterator[dict[str, Any]]:
    """Every record / enum / fixed definition inside ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _named_types(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in {"record", "enum", "fixed"}:
            yield schema
            for field in schema.get("fields", ()):
                yield from _named_types(field["type"])
        elif schema.get("type") == "array":
            yield from _named_types(schema["items"])
        elif schema.get("type") == "map":
            yield from _named_types(schema["values"])


def _is_timestamp(field_type: Any) -> bool:
    branches = field_type if isinstance(field_type, list) else [field_type]
    return any(
        isinstance(b, dict)
        and b.get("type") == "long"
        and b.get("logicalType") == "timestamp-millis"
        for b in branches
    )


def test_every_expected_schema_ships() -> None:
    assert schema_names() == sorted(EXPECTED)
    for stem, name in EXPECTED.items():
        schema = json.loads((AVRO_DIR / f"{stem}.avsc").read_text())
        assert schema["type"] == "record"
        assert schema["name"] == name
        assert schema["namespace"] == NAMESPACE == "io.tickcast.v1"
        parse_schema(schema, named_schemas={})  # fastavro accepts it


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_every_type_and_field_has_a_doc(stem: str) -> None:
    schema = load_schema(stem)
    named = list(_named_types(schema))
    assert named, "a schema defines at least its record"
    for definition in named:
        assert str(definition.get("doc", "")).strip(), f"{definition['name']} has no doc"
        for field in definition.get("fields", ()):
            assert str(field.get("doc", "")).strip(), f"{definition['name']}.{field['name']}"


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_time_fields_are_timestamp_millis(stem: str) -> None:
    fields = load_schema(stem)["fields"]
    seen = set()
    for field in fields:
        if field["name"] in TIMESTAMP_FIELDS:
            seen.add(field["name"])
            assert _is_timestamp(field["type"]), field["name"]
        else:
            assert not _is_timestamp(field["type"]), f"{field['name']} is a timestamp"
    assert {"ts", "window_start", "failed_at", "published_at"} & seen


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_optional_fields_are_null_first_with_null_default(stem: str) -> None:
    for field in load_schema(stem)["fields"]:
        if isinstance(field["type"], list):
            assert field["type"][0] == "null", field["name"]
            assert "default" in field, field["name"]
            assert field["default"] is None, field["name"]


def test_model_role_is_the_same_type_everywhere() -> None:
    roles = [
        t
        for stem in ("prediction", "outcome", "model_event")
        for t in _named_types(load_schema(stem))
        if t["name"] == "ModelRole"
    ]
    assert len(roles) == 3
    assert all(r == roles[0] for r in roles)
    assert roles[0]["symbols"] == ["CHAMPION", "CHALLENGER", "SHADOW"]


def test_dead_letter_reasons_are_the_documented_set() -> None:
    (reason,) = [t for t in _named_types(load_schema("dead_letter")) if t["type"] == "enum"]
    documented = [
        "UNDECODABLE",
        "SCHEMA_MISMATCH",
        "BAD_PRICE",
        "BAD_RANGE",
        "NEGATIVE_VOLUME",
        "DUPLICATE",
        "OUT_OF_ORDER",
        "OUTLIER_RETURN",
        "UNKNOWN_SYMBOL",
    ]
    # Codes added later are appended after OTHER: no existing code ever changes position.
    added = ["FUTURE_TIMESTAMP", "KEY_MISMATCH", "BAD_SYMBOL"]
    assert reason["symbols"] == [*documented, "OTHER", *added]
    assert reason["default"] == "OTHER"  # unknown future codes read as OTHER
    for symbol in reason["symbols"]:
        assert f"{symbol}:" in reason["doc"], f"{symbol} is not explained in the enum doc"


def test_feature_vector_values_are_a_double_array() -> None:
    (values,) = [f for f in load_schema("feature_vector")["fields"] if f["name"] == "values"]
    assert values["type"] == {"type": "array", "items": "double"}


def test_fingerprints_are_pinned() -> None:
    assert {stem: AvroCodec(stem).fingerprint.hex() for stem in EXPECTED} == PINNED_FINGERPRINTS


def test_docs_do_not_change_fingerprints() -> None:
    schema = load_schema("tick")
    schema["doc"] = "something else"
    schema["fields"][0]["doc"] = "reworded"
    assert AvroCodec(schema).fingerprint == AvroCodec("tick").fingerprint


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_each_schema_is_compatible_with_itself(stem: str) -> None:
    assert compatibility_problems(load_schema(stem), load_schema(stem)) == []


# --- the compatibility checker on the evolutions the docs allow and forbid -------------------


def _tick_without(*names: str) -> dict[str, Any]:
    schema = load_schema("tick")
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in names]
    return schema


def test_adding_a_nullable_field_with_default_is_backward_and_forward_compatible() -> None:
    old, new = _tick_without("correlation_id"), load_schema("tick")
    assert is_compatible(writer=old, reader=new)
    assert is_compatible(writer=new, reader=old)


def test_adding_a_required_field_is_not_backward_compatible() -> None:
    new = load_schema("tick")
    new["fields"].append({"name": "venue", "type": "string", "doc": "Exchange MIC."})
    assert compatibility_problems(writer=load_schema("tick"), reader=new) == [
        "$.venue: reader field missing from writer and has no default"
    ]


def test_changing_a_type_is_detected_but_promotions_are_allowed() -> None:
    changed = load_schema("tick")
    field = next(f for f in changed["fields"] if f["name"] == "volume")
    field["type"] = "string"
    assert not is_compatible(writer=changed, reader=load_schema("tick"))
    field["type"] = "int"  # int -> double is an Avro promotion
    assert is_compatible(writer=changed, reader=load_schema("tick"))


def test_enum_symbols_and_defaults() -> None:
    wider = load_schema("dead_letter")
    reason = wider["fields"][5]["type"]
    reason["symbols"] = [*reason["symbols"], "STALE"]
    assert is_compatible(writer=wider, reader=load_schema("dead_letter"))  # reader default
    strict = load_schema("prediction")
    wider_role = copy.deepcopy(strict)
    next(f for f in wider_role["fields"] if f["name"] == "role")["type"]["symbols"].append("CANARY")
    problems = compatibility_problems(writer=wider_role, reader=strict)
    assert len(problems) == 1
    assert "CANARY" in problems[0]


def test_making_a_field_optional_is_compatible_but_not_the_reverse() -> None:
    optional = load_schema("tick")
    source = next(f for f in optional["fields"] if f["name"] == "source")
    source["type"], source["default"] = ["null", "string"], None
    assert is_compatible(writer=load_schema("tick"), reader=optional)
    assert not is_compatible(writer=optional, reader=load_schema("tick"))  # null has no home


def test_renamed_records_and_aliases() -> None:
    renamed = load_schema("tick")
    renamed["name"] = "Trade"
    assert not is_compatible(writer=load_schema("tick"), reader=renamed)
    renamed["aliases"] = ["Tick"]
    assert is_compatible(writer=load_schema("tick"), reader=renamed)
    field_renamed = load_schema("tick")
    field_renamed["fields"][0].update(name="ticker", aliases=["symbol"])
    assert is_compatible(writer=load_schema("tick"), reader=field_renamed)


def test_nested_arrays_maps_and_references() -> None:
    base = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "xs", "type": {"type": "array", "items": "int"}},
            {"name": "m", "type": {"type": "map", "values": "float"}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
            {"name": "e2", "type": "E"},
            {"name": "f", "type": {"type": "fixed", "name": "F", "size": 4}},
        ],
    }
    other = copy.deepcopy(base)
    other["fields"][0]["type"]["items"] = "long"
    other["fields"][1]["type"]["values"] = "double"
    assert is_compatible(writer=base, reader=other)
    assert not is_compatible(writer=other, reader=base)
    other["fields"][4]["type"]["size"] = 8
    assert any("fixed size" in p for p in compatibility_problems(writer=base, reader=other))
    broken = copy.deepcopy(base)
    broken["fields"][3]["type"] = "Missing"
    assert compatibility_problems(writer=broken, reader=base)[0].startswith("$: malformed")


def test_doctests() -> None:
    import doctest

    import schemas.compat
    import streams.codec

    for module in (schemas.compat, streams.codec):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_typed_dicts_mirror_the_schemas(stem: str) -> None:
    from typing import get_args, get_type_hints

    from schemas.records import RECORD_TYPES

    typed = RECORD_TYPES[stem]
    assert typed.__name__ == EXPECTED[stem]
    fields = load_schema(stem)["fields"]
    assert list(get_type_hints(typed)) == [f["name"] for f in fields]
    optional = {f["name"] for f in fields if "default" in f}
    assert set(typed.__optional_keys__) == optional  # type: ignore[attr-defined]
    hints = get_type_hints(typed)
    for field in fields:
        if isinstance(field["type"], dict) and field["type"]["type"] == "enum":
            assert list(get_args(hints[field["name"]])) == field["type"]["symbols"]


def test_previous_versions_are_kept_and_still_readable() -> None:
    history = sorted((AVRO_DIR / "history").glob("*.avsc"))
    assert history, "previous schema versions are kept for readers"
    for path in history:
        stem, pinned = path.stem.split(".")
        old = json.loads(path.read_text())
        assert AvroCodec(old).fingerprint.hex() == pinned
        assert AvroCodec(old).fingerprint != AvroCodec(stem).fingerprint
        assert compatibility_problems(writer=old, reader=load_schema(stem)) == []
        assert compatibility_problems(writer=load_schema(stem), reader=old) == []


def test_outcome_features_round_trip_and_old_outcomes_read_as_null() -> None:
    record = {
        "symbol": "AAPL", "ts": 1, "horizon": 1, "model_name": "m", "model_version": "1",
        "role": "CHAMPION", "prob_up": 0.6, "expected_return": 0.001, "realized_return": -0.002,
        "realized_ts": 2, "hit": False, "loss": 0.9, "strategy_return": -0.002,
    }  # fmt: skip
    current = AvroCodec("outcome")
    got = current.decode(current.encode({**record, "features": [1.5, float("nan")]}))
    assert got["features"][0] == 1.5
    assert got["features"][1] != got["features"][1]  # NaN survives
    old = AvroCodec(
        json.loads((AVRO_DIR / "history" / "outcome.ceb2ed2d6994424d.avsc").read_text())
    )
    current.register_writer_schema(old.schema)
    assert current.decode(old.encode(record))["features"] is None


def test_new_dead_letter_reasons_read_as_other_by_the_previous_version() -> None:
    record = {
        "source_topic": "ticks", "partition": 1, "offset": 7, "key": None, "payload": b"x",
        "reason": "KEY_MISMATCH", "detail": "record has no key", "failed_at": 1,
    }  # fmt: skip
    path = AVRO_DIR / "history" / "dead_letter.36e97d8b86efaa76.avsc"
    old = AvroCodec(json.loads(path.read_text()))
    old.register_writer_schema(load_schema("dead_letter"))
    for reason in ("FUTURE_TIMESTAMP", "KEY_MISMATCH", "BAD_SYMBOL"):
        payload = AvroCodec("dead_letter").encode({**record, "reason": reason})
        assert old.decode(payload)["reason"] == "OTHER"
    current = AvroCodec("dead_letter")
    current.register_writer_schema(old.schema)
    assert current.decode(old.encode({**record, "reason": "OTHER"}))["reason"] == "OTHER"
