"""schemas/contracts.py reads the .avsc files right, and the TypedDicts of schemas/records.py
have the contracts' field types (names, order and optionality: test_schemas.py)."""

from __future__ import annotations

from typing import Any, Literal, get_type_hints

import pytest

from schemas.contracts import contract, stems
from schemas.records import RECORD_TYPES
from streams.codec import load_schema, schema_names
from tests.unit.schemas.probe import probe

PYTHON: dict[str, Any] = {
    "string": str,
    "bytes": bytes,
    "int": int,
    "long": int,
    "timestamp-millis": int,
    "double": float,
    "boolean": bool,
    "array<double>": list[float],
    "array<string>": list[str],
    "map<double>": dict[str, float],
    "map<string>": dict[str, str],
}


def _python_type(kind: str, symbols: tuple[str, ...]) -> Any:
    """The annotation a TypedDict field of Avro type ``kind`` must have."""
    if kind.startswith("null|"):
        return _python_type(kind.removeprefix("null|"), symbols) | None
    if kind == "enum":
        return Literal[symbols]  # Literal["A", "B"] is Literal[("A", "B")]
    return PYTHON[kind]


def test_every_contract_is_loaded() -> None:
    assert stems() == schema_names()
    for stem in stems():
        schema = load_schema(stem)
        assert contract(stem) is contract(schema["name"])  # loaded once
        assert contract(stem).fields == tuple(f["name"] for f in schema["fields"])


@pytest.mark.parametrize("stem", stems())
def test_typed_dict_field_types_are_the_contracts(stem: str) -> None:
    c = contract(stem)
    hints = get_type_hints(RECORD_TYPES[stem])
    for field in c.fields:
        assert hints[field] == _python_type(c.types[field], c.symbols.get(field, ())), field


@pytest.mark.parametrize("stem", stems())
def test_probe_records_encode_and_decode(stem: str) -> None:
    from streams.codec import AvroCodec

    codec = AvroCodec(stem)
    record = probe(stem)
    assert codec.decode(codec.encode(record)) == record
    assert len({repr(v) for v in record.values()}) == len(record) or stem == "model_event"
