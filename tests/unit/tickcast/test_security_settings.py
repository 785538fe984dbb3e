"""Secrets in Settings: no usable public default beyond loopback, 32 bytes at least, named."""

from __future__ import annotations

import doctest
import os

import pytest
from typer.testing import CliRunner

import tickcast.config
from serving.cli import app as serve_app
from tickcast.config import DEV_SECRET, MIN_SECRET_BYTES, Settings, load_settings
from tickcast.errors import ConfigError

REAL = "r" * MIN_SECRET_BYTES


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TICKCAST_* variable of the caller's shell leaks into these tests."""
    for key in [k for k in os.environ if k.startswith("TICKCAST_")]:
        monkeypatch.delenv(key)


def test_the_embedded_defaults_still_load() -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.api_host == "127.0.0.1"
    assert settings.jwt_secret.get_secret_value() == DEV_SECRET
    assert len(DEV_SECRET.encode()) >= MIN_SECRET_BYTES
    assert settings.metrics_host == settings.clickhouse_read_host == "127.0.0.1"
    assert settings.password_scrypt_n == 2**17


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "tickcast.example.com"])
def test_the_development_secret_is_refused_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("TICKCAST_API_HOST", host)
    with pytest.raises(ConfigError, match="TICKCAST_JWT_SECRET is the public development"):
        load_settings()
    monkeypatch.setenv("TICKCAST_JWT_SECRET", REAL)
    assert load_settings().api_host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_development_secret_works_on_loopback(host: str) -> None:
    assert load_settings(api_host=host).jwt_secret.get_secret_value() == DEV_SECRET


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("size", [1, 16, MIN_SECRET_BYTES - 1])
def test_short_secrets_are_refused_in_every_mode(
    monkeypatch: pytest.MonkeyPatch, env: str, size: int
) -> None:
    monkeypatch.setenv("TICKCAST_ENV", env)
    monkeypatch.setenv("TICKCAST_JWT_SECRET", "x" * size)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"TICKCAST_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {size}" in str(
        info.value
    )
    monkeypatch.setenv("TICKCAST_JWT_SECRET", "x" * MIN_SECRET_BYTES)
    assert load_settings().env == env


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_ENV", "production")
    with pytest.raises(ConfigError, match="TICKCAST_JWT_SECRET must be set outside development"):
        load_settings()


def test_the_read_token_is_generated_or_long(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().clickhouse_read_token.get_secret_value() == ""
    monkeypatch.setenv("TICKCAST_CLICKHOUSE_READ_TOKEN", "short")
    with pytest.raises(ConfigError, match="TICKCAST_CLICKHOUSE_READ_TOKEN must be at least 32"):
        load_settings()


def test_password_cost_is_a_power_of_two_and_high_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="power of two"):
        load_settings(password_scrypt_n=100_000)
    monkeypatch.setenv("TICKCAST_ENV", "production")
    monkeypatch.setenv("TICKCAST_JWT_SECRET", REAL)
    with pytest.raises(ConfigError, match="below 2\\*\\*17 is for tests only"):
        load_settings(password_scrypt_n=2**14)
    assert load_settings().password_scrypt_n == 2**17


@pytest.mark.parametrize("args", [["--host", "0.0.0.0"], ["--host", "0.0.0.0", "--dry-run"]])
def test_serve_on_a_public_address_with_the_development_secret_refuses_to_start(
    args: list[str],
) -> None:
    result = CliRunner().invoke(serve_app, args)
    assert result.exit_code == 2
    assert "TICKCAST_JWT_SECRET" in result.output
    assert "'0.0.0.0'" in result.output


def test_serve_on_loopback_or_with_a_real_secret_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CliRunner().invoke(serve_app, ["--dry-run"]).exit_code == 0
    monkeypatch.setenv("TICKCAST_JWT_SECRET", REAL)
    assert CliRunner().invoke(serve_app, ["--host", "0.0.0.0", "--dry-run"]).exit_code == 0


def test_a_copy_is_not_revalidated_but_a_load_is() -> None:
    # model_copy (the test fixtures' namespaces) skips validation; every process loads instead
    copied = Settings().model_copy(update={"api_host": "0.0.0.0"})
    assert copied.api_host == "0.0.0.0"
    with pytest.raises(ConfigError):
        load_settings(api_host="0.0.0.0")


def test_doctests() -> None:
    result = doctest.testmod(tickcast.config)
    assert result.attempted > 0
    assert result.failed == 0
