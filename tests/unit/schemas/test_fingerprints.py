"""The Avro contracts' fingerprints are pinned: a doc edit may not change the wire format.

Avro's parsing canonical form drops ``doc`` (and aliases, defaults), so the CRC-64-AVRO
fingerprint that every framed payload announces changes only when the schema itself does.
A change here means existing topics and the ClickHouse history no longer resolve against the
current schema without an entry in ``schemas/avro/history/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.codec import fingerprint

AVRO = Path(__file__).resolve().parents[3] / "schemas" / "avro"

PINNED = {
    "dead_letter.avsc": "ddb6776f1d1e31ee",
    "drift_stat.avsc": "d66477c3eed86f5f",
    "feature_vector.avsc": "329689d40f2c2e60",
    "macro_observation.avsc": "9a0c38e910a81ed5",
    "model_event.avsc": "d4481c9c2c3bdf07",
    "news_item.avsc": "6e0da0f3c858259b",
    "outcome.avsc": "6a3445b26b1af59b",
    "prediction.avsc": "f0b255551d1b51bc",
    "tick.avsc": "3f491c832fd3e256",
}


def test_every_contract_is_pinned() -> None:
    assert sorted(p.name for p in AVRO.glob("*.avsc")) == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fingerprint_is_unchanged(name: str) -> None:
    assert fingerprint(json.loads((AVRO / name).read_text())).hex() == PINNED[name]


@pytest.mark.parametrize("path", sorted((AVRO / "history").glob("*.avsc")), ids=lambda p: p.name)
def test_history_file_is_named_by_its_fingerprint(path: Path) -> None:
    assert fingerprint(json.loads(path.read_text())).hex() == path.name.split(".")[1]
