"""Static Avro schema-resolution check: can data written with one schema be read with another?

This follows the resolution rules of the Avro specification (the same rules fastavro applies
record by record at read time), so an incompatible writer schema is refused when it is
registered instead of on the first record that happens to exercise the difference.

>>> old = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]}
>>> new = {"type": "record", "name": "T", "fields": [
...     {"name": "a", "type": "long"},
...     {"name": "b", "type": ["null", "string"], "default": None}]}
>>> compatibility_problems(writer=old, reader=new)
[]
>>> compatibility_problems(writer=new, reader=old)
['$.a: writer type long cannot be read as int']
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
# writer type -> reader types it may be promoted to (Avro spec, "Schema Resolution").
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}

Names = dict[str, dict[str, Any]]


def _fullname(schema: dict[str, Any], namespace: str) -> tuple[str, str]:
    """The full name of a named schema and the namespace its children inherit."""
    name = str(schema["name"])
    if "." in name:
        return name, name.rpartition(".")[0]
    ns = str(schema.get("namespace", namespace) or "")
    return (f"{ns}.{name}" if ns else name), ns


def _collect(schema: Any, namespace: str, names: Names) -> None:
    """Record every named type of ``schema`` under its full name (and its short name)."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED:
            full, namespace = _fullname(schema, namespace)
            names.setdefault(full, schema)
            names.setdefault(full.rpartition(".")[2], schema)
            for field in schema.get("fields", ()):
                _collect(field["type"], namespace, names)
        elif kind == "array":
            _collect(schema["items"], namespace, names)
        elif kind == "map":
            _collect(schema["values"], namespace, names)
        elif isinstance(kind, dict | list):
            _collect(kind, namespace, names)


def _resolve(schema: Any, names: Names) -> Any:
    """Replace a reference by its definition and ``{"type": "long", ...}`` by ``"long"``."""
    while True:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return schema
            found = names.get(schema) or names.get(schema.rpartition(".")[2])
            if found is None:
                raise ValueError(f"unknown named type {schema!r}")
            schema = found
        elif isinstance(schema, dict) and not (
            schema.get("type") in NAMED or schema.get("type") in {"array", "map"}
        ):
            schema = schema["type"]
        else:
            return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return "record" if schema["type"] == "error" else str(schema["type"])


def _short(schema: dict[str, Any]) -> str:
    return str(schema["name"]).rpartition(".")[2]


class _Checker:
    def __init__(self, writer: Any, reader: Any) -> None:
        self.wnames: Names = {}
        self.rnames: Names = {}
        _collect(writer, "", self.wnames)
        _collect(reader, "", self.rnames)
        self.seen: set[tuple[int, int]] = set()
        self.problems: list[str] = []

    def check(self, writer: Any, reader: Any, path: str) -> bool:
        """True when ``writer`` data reads as ``reader``; problems are appended otherwise."""
        w, r = _resolve(writer, self.wnames), _resolve(reader, self.rnames)
        wk, rk = _kind(w), _kind(r)
        if wk == "union":
            ok = True
            for branch in w:
                ok = self.check(branch, r, path) and ok
            return ok
        if rk == "union":
            before = len(self.problems)
            for branch in r:
                if self.check(w, branch, path):
                    del self.problems[before:]  # failures of other branches are not problems
                    return True
            del self.problems[before:]
            return self._fail(f"{path}: writer type {wk} matches no branch of the reader union")
        if wk != rk:
            if rk in PROMOTIONS.get(wk, ()):
                return True
            return self._fail(f"{path}: writer type {wk} cannot be read as {rk}")
        if wk in PRIMITIVES:
            return True
        if wk == "array":
            return self.check(w["items"], r["items"], f"{path}[]")
        if wk == "map":
            return self.check(w["values"], r["values"], f"{path}{{}}")
        aliases = {str(a).rpartition(".")[2] for a in r.get("aliases", ())}
        if _short(w) != _short(r) and _short(w) not in aliases:
            return self._fail(f"{path}: {wk} name {_short(w)} differs from {_short(r)}")
        if wk == "fixed":
            if w["size"] != r["size"]:
                return self._fail(f"{path}: fixed size {w['size']} differs from {r['size']}")
            return True
        if wk == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                return self._fail(f"{path}: reader enum lacks symbols {missing} and a default")
            return True
        return self._record(w, r, path)

    def _record(self, w: dict[str, Any], r: dict[str, Any], path: str) -> bool:
        key = (id(w), id(r))
        if key in self.seen:  # recursive type already being checked
            return True
        self.seen.add(key)
        wfields = {f["name"]: f for f in w["fields"]}
        ok = True
        for field in r["fields"]:
            candidates = [field["name"], *field.get("aliases", ())]
            match = next((wfields[n] for n in candidates if n in wfields), None)
            where = f"{path}.{field['name']}"
            if match is not None:
                ok = self.check(match["type"], field["type"], where) and ok
            elif "default" not in field:
                ok = self._fail(f"{where}: reader field missing from writer and has no default")
        return ok

    def _fail(self, message: str) -> bool:
        self.problems.append(message)
        return False


def compatibility_problems(writer: Any, reader: Any) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty when it can).

    Both are schemas as JSON-like Python objects (parsed by fastavro or not). Unknown named
    references are reported as a problem rather than raised.
    """
    checker = _Checker(writer, reader)
    try:
        checker.check(writer, reader, "$")
    except (KeyError, TypeError, ValueError) as exc:
        checker.problems.append(f"$: malformed schema ({exc})")
    return checker.problems


def is_compatible(writer: Any, reader: Any) -> bool:
    """True when every record written with ``writer`` can be read with ``reader``."""
    return not compatibility_problems(writer, reader)
