"""A probe record per contract: every field set, each to a value no other field has.

Drift tests push a probe through a hand-written list of fields (a codec, a row, a JSON) and
check each field came back where the contract puts it: a swapped, missing or extra field
shows up as a wrong value.
"""

from __future__ import annotations

from typing import Any

from schemas.contracts import contract

T0 = 1_700_000_000_000


def _value(kind: str, name: str, i: int, symbols: tuple[str, ...]) -> Any:
    kind = kind.removeprefix("null|")
    values: dict[str, Any] = {
        "string": f"{name}-{i}",
        "bytes": f"{name}-{i}".encode(),
        "int": i + 1,
        "long": 1_000 + i,
        "timestamp-millis": T0 + i,
        "double": i + 0.25,
        "boolean": True,
        "enum": symbols[-1] if symbols else None,
        "array<double>": [i + 0.5, i + 1.5],
        "array<string>": [f"{name}-{i}", f"{name}-{i}b"],
        "map<double>": {name: i + 0.75},
        "map<string>": {name: f"{name}-{i}"},
    }
    return values[kind]


def probe(name: str) -> dict[str, Any]:
    """A record of contract ``name`` with a distinct, non-null value in every field.

    >>> probe("prediction")["model_name"], probe("prediction")["ts"]
    ('model_name-5', 1700000000001)
    """
    c = contract(name)
    return {
        field: _value(c.types[field], field, i, c.symbols.get(field, ()))
        for i, field in enumerate(c.fields)
    }
