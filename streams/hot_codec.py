"""Hand-written Avro codecs for the worker's hot path: Tick decode, Prediction/Outcome encode.

Why: on a replay of the worker's micro-batches (500 symbols, an XGBoost champion), fastavro's
generic reader and writer were ~20 % of the stage: ~6 µs to decode a Tick, ~10-20 µs to
encode each Prediction and each Outcome (the latter carries a 41-double array). These
classes read and write the *current* schema of each record with ``struct`` and inline
varints, byte for byte what :class:`streams.codec.AvroCodec` does.

fastavro stays the reference and the fallback: anything the fast path does not handle
exactly (another writer schema, a malformed or truncated payload, a value of an unexpected
type, a varint beyond 63 bits, invalid UTF-8) is handed to the AvroCodec, which returns the
same result or raises the same :class:`tickcast.errors.SchemaError`. Property tests compare
both on generated records (``tests/unit/streams/test_hot_codec.py``).

Avro binary encoding (spec 1.11): ``long``/``int`` are zig-zag varints, ``string`` a
length-prefixed UTF-8 body, ``enum`` the symbol's index, ``boolean`` one byte, ``double``
8 bytes little-endian, an ``array`` blocks of ``count, items...`` ended by a 0 count, a union
the branch index (varint) then the value.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, cast

from schemas.records import Tick, TickKind
from streams.codec import HEADER_SIZE, AvroCodec, get_codec

_D = struct.Struct("<d")
_D6 = struct.Struct("<6d")
_unpack_d = _D.unpack_from
_unpack_6d = _D6.unpack_from
_pack_d = _D.pack
_pack_2d = struct.Struct("<2d").pack
_pack_3d = struct.Struct("<3d").pack
_MAX_VARINT_BYTES = 9  # 63 bits of payload: beyond that, let fastavro decide
_NULL = b"\x00"
_SOME = b"\x02"

#: Zig-zag varints of the integers -64..63 (one byte each): most ints of these records.
_SMALL = {n: bytes([(n << 1) ^ (n >> 63)]) for n in range(-64, 64)}


# Control flow, not an error: raised and caught inside this module and feature_encoder, it
# never reaches a caller, so it stays outside TickcastError (an ``except TickcastError`` must
# not swallow it). tests/unit/tickcast/test_error_hierarchy.py lists it as exempt.
class Fallback(Exception):
    """The fast path cannot decide: use fastavro."""


def varint(n: int) -> bytes:
    """Zig-zag varint of a signed 64-bit integer."""
    small = _SMALL.get(n)
    if small is not None and type(n) is int:
        return small
    if type(n) is not int or not -(1 << 63) <= n < (1 << 63):
        raise Fallback
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def string(text: str) -> bytes:
    """Length-prefixed UTF-8 (``str`` only)."""
    if type(text) is not str:
        raise Fallback
    body = text.encode()
    return varint(len(body)) + body


def optional_string(text: str | None) -> bytes:
    """A ``["null", "string"]`` union."""
    return _NULL if text is None else _SOME + string(text)


def optional_long(n: int | None) -> bytes:
    """A ``["null", "long"]`` union."""
    return _NULL if n is None else _SOME + varint(n)


class DoubleArray:
    """Avro ``array<double>``: one block packed by one ``struct`` call (packers cached by
    length; the records' arrays have one length, the feature set's)."""

    __slots__ = ("_packers",)

    def __init__(self) -> None:
        self._packers: dict[int, struct.Struct] = {}

    def encode(self, values: Any) -> bytes:
        """The array's bytes (``struct`` refuses a non-number: the caller falls back)."""
        n = len(values)
        if n == 0:
            return _NULL
        packer = self._packers.get(n)
        if packer is None:
            packer = self._packers[n] = struct.Struct(f"<{n}d")
        return b"".join((varint(n), packer.pack(*values), _NULL))


def _double(x: Any) -> float:
    """A value fastavro writes as a double the same way ``struct`` does (float or int)."""
    t = type(x)
    if t is float:
        return x
    if t is int and not isinstance(x, bool):
        return float(x)
    raise Fallback


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at ``pos``: (value, next position); IndexError when truncated."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    z = b & 0x7F
    shift = 7
    end = pos + _MAX_VARINT_BYTES
    pos += 1
    while True:
        if pos >= end:
            raise Fallback
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = _read_long(buf, pos)
    end = pos + n
    if n < 0 or end > len(buf):
        raise Fallback
    return buf[pos:end].decode(), end


class TickDecoder:
    """``decode(payload)`` equals ``get_codec("Tick").decode(payload)`` (same errors too)."""

    __slots__ = ("_header", "_kinds", "codec")

    def __init__(self, codec: AvroCodec | None = None) -> None:
        self.codec = codec or get_codec("Tick")
        fields = {f["name"]: f for f in self.codec.schema["fields"]}
        self._kinds: tuple[TickKind, ...] = tuple(fields["kind"]["type"]["symbols"])
        self._header = self.codec.header

    @property
    def fingerprint(self) -> bytes:
        """The fingerprint of the schema read fast (others go through fastavro)."""
        return self.codec.fingerprint

    def decode(self, payload: bytes) -> Tick:
        """Decode one framed Tick (fast path for the current writer schema)."""
        if type(payload) is bytes and payload[:HEADER_SIZE] == self._header:
            try:
                return self._body(payload)
            except (Fallback, IndexError, UnicodeDecodeError, struct.error):
                pass
        return cast(Tick, self.codec.decode(payload))

    def _body(self, buf: bytes) -> Tick:
        rl = _read_long
        symbol, pos = _read_string(buf, HEADER_SIZE)
        ts, pos = rl(buf, pos)
        k, pos = rl(buf, pos)
        if not 0 <= k < len(self._kinds):
            raise Fallback
        price, open_, high, low, close, volume = _unpack_6d(buf, pos)
        pos += 48
        quotes: list[float | None] = []
        for _ in range(4):
            branch = buf[pos]
            if branch == 0:
                quotes.append(None)
                pos += 1
            elif branch == 2:
                quotes.append(_unpack_d(buf, pos + 1)[0])
                pos += 9
            else:
                raise Fallback
        branch = buf[pos]
        pos += 1
        interval_ms: int | None = None
        if branch == 2:
            interval_ms, pos = rl(buf, pos)
        elif branch != 0:
            raise Fallback
        source, pos = _read_string(buf, pos)
        branch = buf[pos]
        pos += 1
        sequence: int | None = None
        if branch == 2:
            sequence, pos = rl(buf, pos)
        elif branch != 0:
            raise Fallback
        branch = buf[pos]
        pos += 1
        correlation_id: str | None = None
        if branch == 2:
            correlation_id, pos = _read_string(buf, pos)
        elif branch != 0:
            raise Fallback
        if pos != len(buf):
            raise Fallback
        return {
            "symbol": symbol,
            "ts": ts,
            "kind": self._kinds[k],
            "price": price,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "bid": quotes[0],
            "ask": quotes[1],
            "bid_size": quotes[2],
            "ask_size": quotes[3],
            "interval_ms": interval_ms,
            "source": source,
            "sequence": sequence,
            "correlation_id": correlation_id,
        }


def _roles(codec: AvroCodec) -> dict[str, bytes]:
    role = next(f for f in codec.schema["fields"] if f["name"] == "role")
    return {name: varint(i) for i, name in enumerate(role["type"]["symbols"])}


def optional_strings(values: Any) -> bytes:
    """A ``["null", array<string>]`` union (a list or tuple of ``str`` only)."""
    if values is None:
        return _NULL
    if type(values) is not list and type(values) is not tuple:
        raise Fallback
    if not values:
        return _SOME + _NULL
    return b"".join((_SOME, varint(len(values)), *map(string, values), _NULL))


class PredictionEncoder:
    """``encode(record)`` equals ``get_codec("Prediction").encode(record)`` byte for byte."""

    __slots__ = ("_array", "_roles", "codec")

    def __init__(self) -> None:
        self.codec = get_codec("Prediction")
        self._roles = _roles(self.codec)
        self._array = DoubleArray()

    def _doubles(self, values: Any) -> bytes:
        """A ``["null", array<double>]`` union (floats only; anything else falls back)."""
        if values is None:
            return _NULL
        if type(values) is not list and type(values) is not tuple:
            raise Fallback
        for v in values:
            if type(v) is not float:
                raise Fallback
        return _SOME + self._array.encode(values)

    def encode(self, r: Mapping[str, Any]) -> bytes:
        """Frame and encode one prediction (fastavro for anything unusual)."""
        try:
            return b"".join(
                (
                    self.codec.header,
                    string(r["symbol"]),
                    varint(r["ts"]),
                    varint(r["horizon"]),
                    _pack_2d(_double(r["prob_up"]), _double(r["expected_return"])),
                    string(r["model_name"]),
                    string(r["model_version"]),
                    self._roles[r["role"]],
                    string(r["feature_set_version"]),
                    _pack_d(_double(r["scoring_latency_ms"])),
                    optional_string(r.get("correlation_id")),
                    varint(r["produced_at"]),
                    optional_strings(r.get("explanation_features")),
                    self._doubles(r.get("explanation_contributions")),
                )
            )
        except (Fallback, KeyError, TypeError, AttributeError, UnicodeEncodeError):
            return self.codec.encode(dict(r))


class OutcomeEncoder:
    """``encode(record)`` equals ``get_codec("Outcome").encode(record)`` byte for byte."""

    __slots__ = ("_array", "_roles", "codec")

    def __init__(self) -> None:
        self.codec = get_codec("Outcome")
        self._roles = _roles(self.codec)
        self._array = DoubleArray()

    def _features(self, values: Any) -> bytes:
        if values is None:
            return _NULL
        if type(values) is not list and type(values) is not tuple:
            raise Fallback
        for v in values:
            if type(v) is not float:
                raise Fallback
        return _SOME + self._array.encode(values)

    def encode(self, r: Mapping[str, Any]) -> bytes:
        """Frame and encode one outcome (fastavro for anything unusual)."""
        try:
            hit = r["hit"]
            if hit is not True and hit is not False:
                raise Fallback
            fsv = r.get("feature_set_version")
            return b"".join(
                (
                    self.codec.header,
                    string(r["symbol"]),
                    varint(r["ts"]),
                    varint(r["horizon"]),
                    string(r["model_name"]),
                    string(r["model_version"]),
                    self._roles[r["role"]],
                    _pack_3d(
                        _double(r["prob_up"]),
                        _double(r["expected_return"]),
                        _double(r["realized_return"]),
                    ),
                    varint(r["realized_ts"]),
                    b"\x01" if hit else b"\x00",
                    _pack_2d(_double(r["loss"]), _double(r["strategy_return"])),
                    optional_string(fsv),
                    optional_string(r.get("correlation_id")),
                    self._features(r.get("features")),
                )
            )
        except (Fallback, KeyError, TypeError, AttributeError, UnicodeEncodeError):
            return self.codec.encode(dict(r))


__all__ = ["OutcomeEncoder", "PredictionEncoder", "TickDecoder", "optional_strings", "varint"]
