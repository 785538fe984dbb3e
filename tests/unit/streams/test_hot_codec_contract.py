"""The hand-written codecs of streams/hot_codec.py walk the fields in the .avsc's order.

A probe record (every field set to a value no other field has, tests/unit/schemas/probe.py)
goes through the fast path only (the fastavro fallback is replaced by a stub that fails), and
fastavro reading it back must give every field where the contract puts it.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.contracts import contract
from streams.codec import get_codec
from streams.hot_codec import OutcomeEncoder, PredictionEncoder, TickDecoder
from tests.unit.schemas.probe import probe


class _NoFallback:
    """Stands in for the AvroCodec: the fast path must decide alone."""

    def __init__(self, name: str) -> None:
        self.header = get_codec(name).header
        self.schema = get_codec(name).schema

    def encode(self, _: Any) -> bytes:
        raise AssertionError("the hand-written encoder fell back to fastavro")

    def decode(self, _: bytes) -> Any:
        raise AssertionError("the hand-written decoder fell back to fastavro")


def test_tick_decoder_reads_the_contract_fields_in_order() -> None:
    decoder = TickDecoder()
    record = probe("tick")
    payload = get_codec("Tick").encode(record)
    decoder.codec = _NoFallback("Tick")  # type: ignore[assignment]
    decoded = decoder.decode(payload)
    assert list(decoded) == list(contract("tick").fields)
    assert decoded == record


@pytest.mark.parametrize(
    ("name", "encoder"), [("prediction", PredictionEncoder), ("outcome", OutcomeEncoder)]
)
def test_encoders_write_the_contract_fields_in_order(name: str, encoder: Any) -> None:
    fast = encoder()
    record = probe(name)
    expected = get_codec(name).encode(record)
    fast.codec = _NoFallback(name)
    assert fast.encode(record) == expected
    assert get_codec(name).decode(expected) == record
