"""The read endpoint's shared secret: one 0600 file per data_dir, or the setting."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sinks.read_endpoint import TOKEN_FILE, engine_settings, read_token
from tickcast.config import Settings
from tickcast.errors import DependencyError


def settings_in(path: Path, **values: object) -> Settings:
    return Settings(data_dir=path, **values)  # type: ignore[arg-type]


def test_a_token_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "data")
    with ThreadPoolExecutor(8) as pool:  # processes starting together agree on one token
        tokens = set(pool.map(lambda _: read_token(settings), range(16)))
    (token,) = tokens
    assert len(token.encode()) >= 32
    path = tmp_path / "data" / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token
    assert [p.name for p in path.parent.iterdir()] == [TOKEN_FILE]  # no staging file left


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    read_token(settings)
    (tmp_path / TOKEN_FILE).chmod(0o644)
    with pytest.raises(DependencyError, match="can be read by other users"):
        read_token(settings)


def test_a_short_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / TOKEN_FILE
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(DependencyError, match="shorter than 32 bytes"):
        read_token(settings_in(tmp_path))


def test_the_setting_wins_and_writes_no_file(tmp_path: Path) -> None:
    token = "t" * 40
    assert read_token(settings_in(tmp_path, clickhouse_read_token=token)) == token
    assert not (tmp_path / TOKEN_FILE).exists()


def test_engine_handles_are_readonly_and_limited() -> None:
    settings = Settings(
        clickhouse_read_max_rows=7, clickhouse_read_max_bytes=4096, clickhouse_read_timeout_s=3
    )
    values = engine_settings(settings)
    assert list(values)[-1] == "readonly"  # after it no SET would be accepted
    assert values["readonly"] == "1"
    assert (values["max_result_rows"], values["max_result_bytes"]) == ("7", "4096")
    assert values["max_execution_time"] == "3.0"
