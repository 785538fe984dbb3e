"""The manifest: written last, read strictly, every file re-hashed before a restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.archive import KAFKA_RECORD, REDIS_KEY, read_records, write_records
from recovery.backup import parse_components
from recovery.errors import BackupError
from recovery.manifest import (
    ComponentEntry,
    Manifest,
    checksums,
    now_iso,
    read_manifest,
    verify,
    write_manifest,
)


def _backup(root: Path) -> Manifest:
    write_records(
        root / "redis" / "keys.avro",
        REDIS_KEY,
        [{"key": b"feat:AAPL", "expire_at_ms": 0, "dump": b"\x00\x01"}],
    )
    manifest = Manifest(
        created_at=now_iso(),
        tickcast_version="0",
        source={"redis_key_prefix": "tc:"},
        components={
            "redis": ComponentEntry(
                files=checksums(root, root / "redis"), info={"keys": 1}, seconds=0.0
            )
        },
    )
    write_manifest(root, manifest)
    return manifest


def test_round_trip_and_verification(tmp_path: Path) -> None:
    written = _backup(tmp_path)
    read = read_manifest(tmp_path)
    assert read == written
    assert list(read.components["redis"].files) == ["redis/keys.avro"]
    assert verify(tmp_path, read) == []
    path = tmp_path / "redis" / "keys.avro"
    body = bytearray(path.read_bytes())
    body[-3] ^= 0xFF
    path.write_bytes(bytes(body))
    assert verify(tmp_path, read) == ["redis: redis/keys.avro does not match its checksum"]
    path.unlink()
    assert verify(tmp_path, read) == ["redis: redis/keys.avro is missing"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "manifest.json is missing"),
        ("{not json", "is not a valid manifest"),
        ('{"format": 9, "created_at": "x", "tickcast_version": "0", "source": {}, '
         '"components": {}}', "has format 9"),
        ('{"created_at": "x", "tickcast_version": "0", "source": {}, '
         '"components": {"etcd": {"files": {}, "info": {}, "seconds": 0}}}', "unknown components"),
    ],
)  # fmt: skip
def test_a_bad_manifest_is_a_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(BackupError, match=message):
        read_manifest(tmp_path)


def test_no_directory_at_all(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not a directory"):
        read_manifest(tmp_path / "nowhere")


def test_record_files_round_trip_and_refuse_truncation(tmp_path: Path) -> None:
    records = [
        {"partition": p, "offset": o, "timestamp": 1_700_000_000_000 + o, "key": b"S1",
         "value": None if o == 3 else bytes([o]) * 50,
         "headers": [{"name": "cid", "value": b"abc"}]}
        for p in range(2) for o in range(200)
    ]  # fmt: skip
    path = tmp_path / "t.avro"
    assert write_records(path, KAFKA_RECORD, records) == 400
    assert read_records(path) == records
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BackupError, match="cannot read"):
        read_records(path)


def test_components_are_taken_in_backup_order() -> None:
    assert parse_components(None) == ["kafka", "clickhouse", "redis", "mlflow"]
    assert parse_components("mlflow, kafka") == ["kafka", "mlflow"]
    with pytest.raises(BackupError, match="unknown components"):
        parse_components("redis,etcd")
