"""streams.codec: framing, round trips, schema resolution and typed failures."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.codec import (
    HEADER_SIZE,
    MAGIC,
    AvroCodec,
    canonical_form,
    fingerprint,
    fingerprint_of,
    get_codec,
    load_schema,
    schema_names,
    schema_stem,
)
from tests.support.avro_examples import EXAMPLES, STRATEGIES, T0, same
from tickcast.errors import SchemaError

STEMS = sorted(EXAMPLES)


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO straight from the Avro specification's reference code."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_examples_cover_every_schema() -> None:
    assert schema_names() == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_round_trip_of_a_realistic_record(stem: str) -> None:
    codec = AvroCodec(stem)
    payload = codec.encode(EXAMPLES[stem])
    assert payload[:2] == MAGIC == b"\xc3\x01"
    assert payload[2:HEADER_SIZE] == codec.fingerprint
    assert same(codec.decode(payload), EXAMPLES[stem])


@pytest.mark.parametrize("stem", STEMS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_property(stem: str, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[stem])
    codec = get_codec(stem)
    assert same(codec.decode(codec.encode(record)), record)


def test_fingerprint_is_crc64_avro_of_the_canonical_form_little_endian() -> None:
    # Test vector from the Avro specification's schema fingerprint tests.
    assert int.from_bytes(fingerprint("null"), "little", signed=True) == 7195948357588979594
    for stem in STEMS:
        schema = load_schema(stem)
        expected = _crc64_avro(canonical_form(schema).encode()).to_bytes(8, "little")
        assert fingerprint(schema) == expected == AvroCodec(stem).fingerprint
        assert "doc" not in canonical_form(schema)


def test_fingerprint_is_stable_across_instances_and_parsing() -> None:
    from fastavro import parse_schema

    schema = load_schema("tick")
    assert fingerprint(schema) == fingerprint(parse_schema(load_schema("tick")))
    assert AvroCodec("Tick").fingerprint == AvroCodec("io.tickcast.v1.Tick").fingerprint
    assert fingerprint_of(AvroCodec("tick").encode(EXAMPLES["tick"])) == fingerprint(schema)
    assert fingerprint_of(b"\x00\x01" + bytes(8)) is None
    assert fingerprint_of(b"\xc3\x01") is None


def test_schema_names_resolve_in_every_spelling() -> None:
    assert schema_stem("DeadLetter") == schema_stem("io.tickcast.v1.DeadLetter") == "dead_letter"
    assert load_schema("FeatureVector") == load_schema("feature_vector")
    mutated = load_schema("tick")
    mutated["fields"].clear()
    assert load_schema("tick")["fields"], "load_schema must hand out copies"
    assert get_codec("Tick") is get_codec("tick")
    with pytest.raises(SchemaError) as err:
        load_schema("NoSuchThing")
    assert err.value.reason == "SCHEMA_MISMATCH"


def test_timestamps_decode_as_epoch_millis_and_encode_from_datetimes() -> None:
    codec = AvroCodec("prediction")
    record = dict(EXAMPLES["prediction"])
    record["ts"] = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    decoded = codec.decode(codec.encode(record))
    assert decoded["ts"] == T0
    assert isinstance(decoded["ts"], int)


def test_missing_optional_fields_decode_as_null() -> None:
    codec = AvroCodec("tick")
    trade = {
        k: v
        for k, v in EXAMPLES["tick"].items()
        if k not in {"bid", "ask", "bid_size", "ask_size", "interval_ms", "sequence"}
    }
    trade.update(kind="TRADE", open=190.5, high=190.5, low=190.5)
    decoded = codec.decode(codec.encode(trade))
    assert decoded["bid"] is None
    assert decoded["interval_ms"] is None
    assert decoded["sequence"] is None
    assert decoded["kind"] == "TRADE"


def test_batch_helpers() -> None:
    codec = AvroCodec("feature_vector")
    records = [dict(EXAMPLES["feature_vector"], symbol=f"S{i}", ts=T0 + i) for i in range(5)]
    payloads = codec.encode_many(records)
    assert same(codec.decode_many(payloads), records)
    bad = [payloads[0], b"junk", payloads[1], payloads[2][:-3], payloads[3]]
    with pytest.raises(SchemaError):
        codec.decode_many(bad)
    seen: list[tuple[int, bytes, str]] = []
    decoded = codec.decode_many(bad, on_error=lambda i, p, e: seen.append((i, p, e.reason)))
    assert [r["symbol"] for r in decoded] == ["S0", "S1", "S3"]
    assert seen == [(1, b"junk", "UNDECODABLE"), (3, payloads[2][:-3], "UNDECODABLE")]


def test_bytearray_and_memoryview_payloads_decode() -> None:
    codec = AvroCodec("tick")
    payload = codec.encode(EXAMPLES["tick"])
    assert codec.decode(bytearray(payload))["symbol"] == "AAPL"
    assert codec.decode(memoryview(payload))["symbol"] == "AAPL"


# --- failures are SchemaError with the right reason --------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc3", b"\xc3\x01", b"not avro at all", b"\x00" * 64, None, "a string", 42],
)
def test_garbage_is_undecodable(payload: Any) -> None:
    with pytest.raises(SchemaError) as err:
        AvroCodec("tick").decode(payload)
    assert err.value.reason == "UNDECODABLE"


def test_wrong_magic_is_undecodable() -> None:
    payload = bytearray(AvroCodec("tick").encode(EXAMPLES["tick"]))
    payload[0] = 0xC2
    with pytest.raises(SchemaError) as err:
        AvroCodec("tick").decode(bytes(payload))
    assert err.value.reason == "UNDECODABLE"
    assert "header" in str(err.value)


def test_every_truncation_is_a_schema_error() -> None:
    codec = AvroCodec("tick")
    payload = codec.encode(EXAMPLES["tick"])
    for cut in range(len(payload)):
        with pytest.raises(SchemaError) as err:
            codec.decode(payload[:cut])
        assert err.value.reason == "UNDECODABLE", cut


def test_trailing_bytes_are_undecodable() -> None:
    codec = AvroCodec("prediction")
    with pytest.raises(SchemaError) as err:
        codec.decode(codec.encode(EXAMPLES["prediction"]) + b"\x00")
    assert err.value.reason == "UNDECODABLE"


def test_another_topics_record_is_a_schema_mismatch() -> None:
    payload = AvroCodec("prediction").encode(EXAMPLES["prediction"])
    with pytest.raises(SchemaError) as err:
        AvroCodec("tick").decode(payload)
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert AvroCodec("prediction").fingerprint.hex() in str(err.value)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=80))
def test_random_bodies_never_raise_anything_but_schema_error(body: bytes) -> None:
    codec = get_codec("tick")
    reasons: list[str] = []
    records = codec.decode_many(
        [codec.header + body], on_error=lambda i, p, e: reasons.append(e.reason)
    )
    if records:
        assert set(records[0]) == {f["name"] for f in codec.schema["fields"]}
    else:
        assert reasons == ["UNDECODABLE"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", "not a number"), ("kind", "QUOTE"), ("symbol", None), ("ts", "yesterday")],
)
def test_records_that_do_not_fit_fail_to_encode_with_schema_error(field: str, value: Any) -> None:
    with pytest.raises(SchemaError) as err:
        AvroCodec("tick").encode(dict(EXAMPLES["tick"], **{field: value}))
    assert err.value.reason == "SCHEMA_MISMATCH"


# --- schema evolution -----------------------------------------------------------------------


def _old_tick_schema() -> dict[str, Any]:
    """Tick as it might have been before ``sequence`` and ``correlation_id`` were added."""
    schema = load_schema("tick")
    schema["fields"] = [
        f for f in schema["fields"] if f["name"] not in {"sequence", "correlation_id"}
    ]
    return schema


def test_older_writer_decodes_into_the_current_schema_with_defaults() -> None:
    old = AvroCodec(_old_tick_schema())
    record = {k: v for k, v in EXAMPLES["tick"].items() if k not in {"sequence", "correlation_id"}}
    payload = old.encode(record)
    current = AvroCodec("tick")
    assert old.fingerprint != current.fingerprint
    with pytest.raises(SchemaError) as err:
        current.decode(payload)  # unknown until registered
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert current.register_writer_schema(old.schema) == old.fingerprint
    assert old.fingerprint in current.known_fingerprints
    decoded = current.decode(payload)
    assert same(decoded, {**record, "sequence": None, "correlation_id": None})
    # records of the current version still decode without resolution
    assert same(current.decode(current.encode(EXAMPLES["tick"])), EXAMPLES["tick"])


def test_newer_writer_decodes_into_an_older_reader_dropping_new_fields() -> None:
    old = AvroCodec(_old_tick_schema())
    old.register_writer_schema(load_schema("tick"))
    decoded = old.decode(AvroCodec("tick").encode(EXAMPLES["tick"]))
    assert "correlation_id" not in decoded
    assert decoded["price"] == EXAMPLES["tick"]["price"]


def test_unknown_enum_symbol_reads_as_the_enum_default() -> None:
    newer = load_schema("dead_letter")
    newer["fields"][5]["type"]["symbols"].append("STALE_QUOTE")
    writer = AvroCodec(newer)
    reader = AvroCodec("dead_letter")
    reader.register_writer_schema(newer)
    decoded = reader.decode(writer.encode(dict(EXAMPLES["dead_letter"], reason="STALE_QUOTE")))
    assert decoded["reason"] == "OTHER"


def _incompatible_tick_schema() -> dict[str, Any]:
    schema = copy.deepcopy(_old_tick_schema())
    next(f for f in schema["fields"] if f["name"] == "volume")["type"] = "string"
    return schema


def test_incompatible_writer_is_refused_at_registration() -> None:
    current = AvroCodec("tick")
    with pytest.raises(SchemaError) as err:
        current.register_writer_schema(_incompatible_tick_schema())
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert "volume" in str(err.value)
    assert current.known_fingerprints == {current.fingerprint}


def test_incompatible_writer_forced_in_fails_at_decode_with_schema_error() -> None:
    bad = AvroCodec(_incompatible_tick_schema())
    payload = bad.encode(dict(EXAMPLES["tick"], volume="12"))
    current = AvroCodec("tick")
    current.register_writer_schema(bad.schema, check=False)  # fastavro would raise here ...
    with pytest.raises(SchemaError) as err:
        current.decode(payload)  # ... and we turn it into our typed error
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert "SchemaResolutionError" in str(err.value)


def test_reader_field_without_default_is_a_mismatch() -> None:
    stricter = load_schema("tick")
    stricter["fields"].append({"name": "venue", "type": "string", "doc": "Exchange MIC."})
    reader = AvroCodec(stricter)
    with pytest.raises(SchemaError):
        reader.register_writer_schema(load_schema("tick"))
    reader.register_writer_schema(load_schema("tick"), check=False)
    with pytest.raises(SchemaError) as err:
        reader.decode(AvroCodec("tick").encode(EXAMPLES["tick"]))
    assert err.value.reason == "SCHEMA_MISMATCH"


def test_invalid_schema_is_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        AvroCodec({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})


def test_records_of_an_older_outcome_schema_still_decode() -> None:
    import json as _json

    from schemas import AVRO_DIR
    from streams.codec import AvroCodec, get_codec

    history = sorted((AVRO_DIR / "history").glob("outcome.*.avsc"))
    assert history, "the previous Outcome schema is kept for old records"
    old = AvroCodec(_json.loads(history[0].read_text()))
    record = {
        "symbol": "AAPL", "ts": 1, "horizon": 1, "model_name": "m", "model_version": "1",
        "role": "CHAMPION", "prob_up": 0.6, "expected_return": 0.001, "realized_return": 0.01,
        "realized_ts": 2, "hit": True, "loss": 0.5, "strategy_return": 0.01,
    }  # fmt: skip
    decoded = get_codec("Outcome").decode(old.encode(record))
    assert decoded["prob_up"] == 0.6
    assert decoded["features"] is None
