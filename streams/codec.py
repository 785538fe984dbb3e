"""Avro codec of the tickcast topics: fastavro schemaless bodies in single-object framing.

Every value on a tickcast topic is one Avro record framed with the standard Avro
*single-object encoding*::

    0xC3 0x01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | body

so each record names the exact schema version that wrote it. :class:`AvroCodec` keeps a
registry fingerprint → parsed writer schema (the current schema plus older versions added
with :meth:`AvroCodec.register_writer_schema`) and reads every record into the *current*
schema (Avro schema resolution: fields added later get their defaults).

Conventions: ``timestamp-millis`` fields decode as ``int`` milliseconds since the epoch
(event time stays an integer on the hot path); ``encode`` accepts ``int`` or an aware
``datetime``. Every failure is a :class:`tickcast.errors.SchemaError` whose ``reason`` is
``UNDECODABLE`` (garbage, wrong magic, truncated, trailing bytes) or ``SCHEMA_MISMATCH``
(unknown fingerprint, incompatible writer schema, a record that does not fit on encode).

>>> codec = AvroCodec("Tick")
>>> payload = codec.encode({"symbol": "AAPL", "ts": 1_700_000_000_000, "kind": "TRADE",
...     "price": 190.5, "open": 190.5, "high": 190.5, "low": 190.5, "close": 190.5,
...     "volume": 100.0, "source": "synthetic"})
>>> payload[:2] == MAGIC and payload[2:10] == codec.fingerprint
True
>>> record = codec.decode(payload)
>>> record["ts"], record["kind"], record["bid"]
(1700000000000, 'TRADE', None)
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas import AVRO_DIR, NAMESPACE
from schemas.compat import compatibility_problems
from tickcast.errors import SchemaError

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10
UNDECODABLE = "UNDECODABLE"
SCHEMA_MISMATCH = "SCHEMA_MISMATCH"

Record = dict[str, Any]
ErrorHandler = Callable[[int, bytes, SchemaError], None]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def schema_stem(name: str) -> str:
    """File stem of a schema: ``Tick``, ``io.tickcast.v1.Tick`` and ``tick`` give ``tick``."""
    return _CAMEL.sub("_", name.rpartition(".")[2]).lower()


def schema_names() -> list[str]:
    """Stems of every schema shipped in ``schemas/avro`` (``dead_letter``, ``tick``, ...)."""
    return sorted(path.stem for path in AVRO_DIR.glob("*.avsc"))


@cache
def _load_raw(stem: str) -> Record:
    path = AVRO_DIR / f"{stem}.avsc"
    try:
        schema: Record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(SCHEMA_MISMATCH, f"no schema {stem!r} in {AVRO_DIR}") from None
    return schema


def load_schema(name: str) -> Record:
    """The JSON schema named ``name`` (record name, full name or file stem), as a fresh dict."""
    return copy.deepcopy(_load_raw(schema_stem(name)))


def canonical_form(schema: Any) -> str:
    """The Avro Parsing Canonical Form of ``schema`` (docs, defaults, logical types dropped)."""
    return str(to_parsing_canonical_form(_unparsed(schema)))


def fingerprint(schema: Any) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of ``schema`` in single-object byte order."""
    return bytes.fromhex(_fastavro_fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def fingerprint_of(payload: bytes) -> bytes | None:
    """The writer fingerprint a framed payload announces, or None when it is not framed."""
    if len(payload) < HEADER_SIZE or payload[:2] != MAGIC:
        return None
    return bytes(payload[2:HEADER_SIZE])


def _unparsed(schema: Any) -> Any:
    """Drop fastavro's private parse markers (``__fastavro_parsed`` ...) from a schema."""
    if isinstance(schema, dict):
        return {k: _unparsed(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_unparsed(item) for item in schema]
    return schema


def _without_logical_types(schema: Any) -> Any:
    """``schema`` with ``logicalType`` removed, so timestamps read as plain ``int``."""
    if isinstance(schema, dict):
        return {
            k: _without_logical_types(v)
            for k, v in schema.items()
            if k != "logicalType" and not k.startswith("__")
        }
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema


def _parse(schema: Any) -> Any:
    """fastavro-parse ``schema`` in a namespace of its own (no cross-schema name clashes)."""
    try:
        return parse_schema(schema, named_schemas={})
    except Exception as exc:  # fastavro raises several types for a malformed schema
        raise SchemaError(SCHEMA_MISMATCH, f"invalid Avro schema: {exc}") from exc


class AvroCodec:
    """Encode and decode one record type with single-object framing and schema resolution."""

    __slots__ = ("_reader_schema", "_readers", "_writer", "fingerprint", "header", "name", "schema")

    def __init__(self, schema: str | Record) -> None:
        """Build the codec of ``schema``: a schema name (see :func:`load_schema`) or a dict."""
        raw = load_schema(schema) if isinstance(schema, str) else _unparsed(schema)
        self.schema: Record = raw
        short, namespace = raw["name"], raw.get("namespace", NAMESPACE)
        self.name: str = short if "." in short else f"{namespace}.{short}"
        self._writer = _parse(raw)
        self._reader_schema = _parse(_without_logical_types(raw))
        self.fingerprint: bytes = fingerprint(raw)
        self.header: bytes = MAGIC + self.fingerprint
        # fingerprint -> (parsed writer schema, parsed reader schema or None when identical)
        self._readers: dict[bytes, tuple[Any, Any]] = {
            self.fingerprint: (self._reader_schema, None)
        }

    def __repr__(self) -> str:
        return f"AvroCodec({self.name!r}, fingerprint={self.fingerprint.hex()})"

    @property
    def known_fingerprints(self) -> frozenset[bytes]:
        """Fingerprints this codec decodes: the current schema and registered writers."""
        return frozenset(self._readers)

    def register_writer_schema(self, schema: Any, *, check: bool = True) -> bytes:
        """Accept records written with an older (or newer) ``schema``; returns its fingerprint.

        With ``check`` the schema must resolve into the current one (Avro resolution rules),
        else :class:`SchemaError` ``SCHEMA_MISMATCH`` lists why. ``check=False`` registers
        anyway: incompatible records then fail at decode with ``SCHEMA_MISMATCH``.
        """
        raw = _unparsed(schema)
        if check:
            problems = compatibility_problems(writer=raw, reader=self.schema)
            if problems:
                raise SchemaError(
                    SCHEMA_MISMATCH,
                    f"writer schema cannot be read as {self.name}: " + "; ".join(problems),
                )
        key = fingerprint(raw)
        if key != self.fingerprint:
            self._readers[key] = (_parse(_without_logical_types(raw)), self._reader_schema)
        return key

    def encode(self, record: Record) -> bytes:
        """Frame and encode one record (missing nullable fields are written as null)."""
        out = BytesIO()
        out.write(self.header)
        try:
            schemaless_writer(out, self._writer, record)
        except Exception as exc:  # fastavro raises ValueError, TypeError, KeyError, ...
            raise SchemaError(
                SCHEMA_MISMATCH, f"record does not fit {self.name}: {type(exc).__name__}: {exc}"
            ) from exc
        return out.getvalue()

    def encode_many(self, records: Iterable[Record]) -> list[bytes]:
        """Encode a batch; the first record that does not fit raises :class:`SchemaError`."""
        return [self.encode(record) for record in records]

    def decode(self, payload: bytes) -> Record:
        """Decode one framed payload into a record of the current schema."""
        try:
            entry = self._readers.get(payload[2:HEADER_SIZE])
        except TypeError:  # None, str or another unsliceable/unhashable value
            entry = None
        if entry is None or payload[:2] != MAGIC:
            if isinstance(payload, bytearray | memoryview):
                return self.decode(bytes(payload))
            raise self._frame_error(payload)
        stream = BytesIO(payload)
        stream.seek(HEADER_SIZE)
        try:
            record: Record = schemaless_reader(stream, entry[0], entry[1])  # type: ignore[assignment]
        except Exception as exc:
            raise _read_error(self.name, exc) from exc
        if stream.tell() != len(payload):
            raise SchemaError(
                UNDECODABLE,
                f"{len(payload) - stream.tell()} trailing bytes after a {self.name} record",
            )
        return record

    def decode_many(
        self, payloads: Sequence[bytes], on_error: ErrorHandler | None = None
    ) -> list[Record]:
        """Decode a batch. Without ``on_error`` the first bad payload raises; with it, bad
        payloads are reported as ``on_error(index, payload, error)`` and left out."""
        decode = self.decode
        if on_error is None:
            return [decode(payload) for payload in payloads]
        records: list[Record] = []
        for index, payload in enumerate(payloads):
            try:
                records.append(decode(payload))
            except SchemaError as exc:
                on_error(index, payload, exc)
        return records

    def _frame_error(self, payload: object) -> SchemaError:
        """The error of a payload whose header is not ours (slow path)."""
        if not isinstance(payload, bytes):
            return SchemaError(UNDECODABLE, f"payload is {type(payload).__name__}, not bytes")
        if len(payload) < HEADER_SIZE:
            return SchemaError(
                UNDECODABLE, f"payload of {len(payload)} bytes is shorter than the header"
            )
        if payload[:2] != MAGIC:
            return SchemaError(
                UNDECODABLE, f"no Avro single-object header (starts {payload[:2].hex()})"
            )
        return SchemaError(
            SCHEMA_MISMATCH,
            f"unknown writer schema fingerprint {payload[2:HEADER_SIZE].hex()} for {self.name}",
        )


def _read_error(name: str, exc: Exception) -> SchemaError:
    kind = type(exc).__name__
    reason = SCHEMA_MISMATCH if "Resolution" in kind else UNDECODABLE
    return SchemaError(reason, f"cannot read {name} body: {kind}: {exc}")


def get_codec(name: str) -> AvroCodec:
    """The process-wide shared codec of schema ``name`` (writer registrations are shared)."""
    return _shared_codec(schema_stem(name))


@cache
def _shared_codec(stem: str) -> AvroCodec:
    # Older versions of a schema live in schemas/avro/history/<stem>.<fingerprint>.avsc, so
    # records written before a compatible change still decode everywhere.
    codec = AvroCodec(stem)
    for path in sorted((AVRO_DIR / "history").glob(f"{stem}.*.avsc")):
        codec.register_writer_schema(json.loads(path.read_text(encoding="utf-8")))
    return codec


__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "AvroCodec",
    "canonical_form",
    "fingerprint",
    "fingerprint_of",
    "get_codec",
    "load_schema",
    "schema_names",
    "schema_stem",
]
