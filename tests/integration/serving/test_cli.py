"""``tickcast serve`` options, ``users create`` and ``token`` on a real Redis."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.cli import app, token_command, users_app
from serving.protocol import GuardedHttpToolsProtocol
from serving.security.tokens import JwtCodec
from tests.support.serving_app import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    settings = make_settings(redis_url)
    values = {
        "TICKCAST_REDIS_URL": settings.redis_url,
        "TICKCAST_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "TICKCAST_API_PORT": "8123",
        "TICKCAST_API_WORKERS": "2",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_serve_uses_settings_uvloop_and_httptools(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["--dry-run"])
    assert result.exit_code == 0, result.output
    options = json.loads(result.output.strip().splitlines()[-1])
    assert options["app"] == "serving.main:service_app"
    assert options["factory"] is True
    assert (options["port"], options["workers"]) == (8123, 2)
    assert options["loop"] == "uvloop"
    # httptools, guarded by the header/body time-outs uvicorn lacks (serving/protocol.py)
    protocol = import_from_string(options["http"])
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol is GuardedHttpToolsProtocol
    assert (options["timeout_keep_alive"], options["limit_concurrency"]) == (5.0, 1024)
    assert options["h11_max_incomplete_event_size"] == 32_768
    assert options["proxy_headers"] is False
    overridden = CliRunner().invoke(app, ["--dry-run", "--workers", "1", "--port", "9000"])
    assert json.loads(overridden.output.strip().splitlines()[-1])["workers"] == 1


def test_users_create_then_token_prints_a_working_curl_line(env: dict[str, str]) -> None:
    runner = CliRunner()
    created = runner.invoke(
        users_app,
        ["create", "ops", "--role", "admin"],
        env={"TICKCAST_NEW_USER_PASSWORD": "a-long-password-1"},
    )
    assert created.exit_code == 0, created.output
    assert "created ops (admin)" in created.output
    duplicate = runner.invoke(
        users_app,
        ["create", "ops", "--role", "admin"],
        env={"TICKCAST_NEW_USER_PASSWORD": "a-long-password-1"},
    )
    assert duplicate.exit_code == 1
    import typer

    cli = typer.Typer()
    cli.command()(token_command)
    printed = runner.invoke(cli, ["ops", "--symbol", "MSFT"])
    assert printed.exit_code == 0, printed.output
    words = shlex.split(printed.output.strip())
    assert words[:3] == ["curl", "-s", "http://127.0.0.1:8123/v1/predictions/MSFT/latest"]
    token = words[-1].removeprefix("Authorization: Bearer ")
    claims = JwtCodec.from_settings(make_settings(env["TICKCAST_REDIS_URL"])).decode(token)
    assert (claims.sub, claims.role) == ("user:ops", "admin")
    assert "models:write" in claims.scopes
    missing = runner.invoke(cli, ["nobody"])
    assert missing.exit_code == 1
