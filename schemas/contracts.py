"""The contract records' fields, read once from their ``.avsc`` (the single declaration).

Every other place that lists a record's fields (the TypedDicts of :mod:`schemas.records`, the
hand-written codecs of ``streams/hot_codec.py``, the ClickHouse tables of ``sinks/tables.py``,
the serving JSON of :mod:`schemas.serving`) derives its list from here or is checked against
it by a unit test (``tests/unit/schemas/test_contracts.py`` and the tests beside each module).

>>> fields("prediction")[:3]
('symbol', 'ts', 'horizon')
>>> sorted(contract("Prediction").optional)
['correlation_id', 'explanation_contributions', 'explanation_features']
>>> contract("tick").types["bid"], contract("tick").types["ts"]
('null|double', 'timestamp-millis')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from schemas import AVRO_DIR

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class Contract:
    """One record of ``schemas/avro``: its name and its fields in wire order."""

    name: str
    stem: str
    fields: tuple[str, ...]
    optional: frozenset[str]
    """Fields with a default (nullable ones): may be left out when encoding."""
    types: dict[str, str]
    """Each field's type in a compact form: ``string``, ``long``, ``timestamp-millis``,
    ``null|double``, ``array<double>``, ``map<string>``, ``enum``..."""
    symbols: dict[str, tuple[str, ...]]
    """The symbols of each enum field, in order."""


def _stem(name: str) -> str:
    return _CAMEL.sub("_", name.rpartition(".")[2]).lower()


def compact_type(avro: Any) -> str:
    """A field type in the compact form of :attr:`Contract.types`.

    >>> compact_type(["null", {"type": "array", "items": "double"}])
    'null|array<double>'
    """
    if isinstance(avro, list):
        return "|".join(compact_type(branch) for branch in avro)
    if isinstance(avro, str):
        return avro
    kind = avro["type"]
    if kind == "array":
        return f"array<{compact_type(avro['items'])}>"
    if kind == "map":
        return f"map<{compact_type(avro['values'])}>"
    if kind in ("enum", "record", "fixed"):
        return str(kind)
    return str(avro.get("logicalType") or compact_type(kind))


def contract(name: str) -> Contract:
    """The contract of ``name`` (record name, full name or file stem), loaded once."""
    return _load(_stem(name))


@cache
def _load(stem: str) -> Contract:
    schema = json.loads((AVRO_DIR / f"{stem}.avsc").read_text(encoding="utf-8"))
    fields = schema["fields"]
    return Contract(
        name=schema["name"],
        stem=stem,
        fields=tuple(f["name"] for f in fields),
        optional=frozenset(f["name"] for f in fields if "default" in f),
        types={f["name"]: compact_type(f["type"]) for f in fields},
        symbols={
            f["name"]: tuple(f["type"]["symbols"])
            for f in fields
            if isinstance(f["type"], dict) and f["type"]["type"] == "enum"
        },
    )


def fields(name: str) -> tuple[str, ...]:
    """The field names of record ``name`` in wire order."""
    return contract(name).fields


def stems() -> list[str]:
    """Stems of every contract shipped in ``schemas/avro``."""
    return sorted(path.stem for path in AVRO_DIR.glob("*.avsc"))


__all__ = ["Contract", "compact_type", "contract", "fields", "stems"]
