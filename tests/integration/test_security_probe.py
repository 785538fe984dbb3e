"""The outside probe's findings, replayed against the real sink endpoint, API and CLI.

Each reproduction of the report (docs/security.md) runs as the probe ran it and must now be
refused; the API's own reads must still work through the guarded endpoint.
"""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from pydantic import SecretStr

import agents.worker
import sinks.read_endpoint
from monitoring.lag import run_lag_exporter
from serving.main import create_app
from sinks.clickhouse import connect
from sinks.history import accuracy_by_model_day, history_page, psi_by_feature_week
from sinks.read_endpoint import ReadEndpoint, open_reader, read_token
from sinks.tables import DRIFT, OUTCOMES, PREDICTIONS, prepare_tables
from tests.integration.test_sinks import DAY, T0, _insert, outcome, prediction
from tests.support.ports import free_port
from tickcast.config import DEV_SECRET, REPO_ROOT, Settings
from tickcast.metrics import serve_metrics

pytestmark = pytest.mark.integration
PASSWORD = "S3cret-pr0be-pw"
REAL_SECRET = "a-real-secret-for-this-test-only-0123456789"


@pytest.fixture
def endpoint(settings: Settings) -> Iterator[ReadEndpoint]:
    """The sink's read endpoint over a database holding predictions, outcomes and drift."""
    prepare_tables(connect(settings), settings)
    preds = [prediction(i, m) for i in range(40) for m in ("xgb", "lgbm")]
    _insert(settings, PREDICTIONS, [PREDICTIONS.to_row(p) for p in preds])
    outs = [outcome(i, m) for i in range(0, 40, 2) for m in ("xgb", "lgbm")]
    _insert(settings, OUTCOMES, [OUTCOMES.to_row(o) for o in outs])
    drift = [
        {"feature": f, "window_start": T0 + d * DAY, "window_end": T0 + (d + 1) * DAY,
         "psi": 0.1 * (d + 1), "ks": 0.1, "n": 100, "reference_model_name": "stream",
         "reference_model_version": "w", "feature_set_version": "v1", "level": "OK",
         "symbol": None, "ks_pvalue": None}
        for f in ("rsi_14", "sma_5") for d in range(3)
    ]  # fmt: skip
    _insert(settings, DRIFT, [DRIFT.to_row(r) for r in drift])
    served = ReadEndpoint(settings).start()  # this process owns chDB, like the sink does
    try:
        yield served
    finally:
        served.close()


def curl(endpoint: ReadEndpoint, sql: str, token: str | None = None) -> httpx.Response:
    """``curl --data-binary SQL http://127.0.0.1:<port>/`` (with the token when given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(endpoint.url + "/", content=sql.encode(), headers=headers, timeout=30)


class Listener:
    """A local HTTP server that counts the requests it receives (the SSRF target)."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                return

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- high: the sink's read endpoint ------------------------------------------------------------
def test_the_endpoint_listens_on_loopback_and_wants_the_token(endpoint: ReadEndpoint) -> None:
    assert endpoint._server is not None
    assert endpoint._server.server_address[0] == "127.0.0.1"
    anonymous = curl(endpoint, "SELECT 1")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert curl(endpoint, "SELECT 1", token="x" * 43).status_code == 401
    assert curl(endpoint, "SELECT 1", token=read_token(endpoint.settings)).text == "1\n"


def test_reading_a_file_is_refused(endpoint: ReadEndpoint) -> None:
    sql = "SELECT * FROM file('/etc/hostname','LineAsString')"
    assert curl(endpoint, sql).status_code == 401  # the probe's request, as sent
    refused = curl(endpoint, sql, token=read_token(endpoint.settings))
    assert refused.status_code == 403
    assert "table function file()" in refused.text
    assert Path("/etc/hostname").read_text().strip() not in refused.text


def test_writing_a_file_is_refused(endpoint: ReadEndpoint, tmp_path: Path) -> None:
    token = read_token(endpoint.settings)
    for target in (tmp_path / "out.txt", Path("out.txt")):
        existed = target.exists()
        sql = f"SELECT 1 INTO OUTFILE '{target}'"
        assert curl(endpoint, sql).status_code == 401
        refused = curl(endpoint, sql, token=token)
        assert refused.status_code == 403
        assert "INTO OUTFILE is not allowed" in refused.text
        assert target.exists() == existed


def test_outbound_requests_are_refused(endpoint: ReadEndpoint) -> None:
    listener = Listener()
    try:
        sql = f"SELECT * FROM url('http://127.0.0.1:{listener.port}/healthz','LineAsString')"
        assert curl(endpoint, sql).status_code == 401
        refused = curl(endpoint, sql, token=read_token(endpoint.settings))
        assert refused.status_code == 403
        assert "table function url()" in refused.text
        assert listener.hits == []
    finally:
        listener.server.shutdown()


BYPASSES = [
    "select * from FILE('/etc/hostname', 'LineAsString')",
    "SELECT * FROM `file`('/etc/hostname', 'LineAsString')",
    "SELECT * FROM /* hidden */ file('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 FORMAT Native; SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM system.numbers LIMIT 1",
    "SELECT * FROM numbers(10)",
    "DROP TABLE {db}.predictions",
]


def test_bypass_attempts_are_refused_over_http(endpoint: ReadEndpoint) -> None:
    db = endpoint.settings.clickhouse_database
    token = read_token(endpoint.settings)
    for sql in BYPASSES:
        refused = curl(endpoint, sql.format(db=db), token=token)
        assert refused.status_code == 403, (sql, refused.status_code, refused.text)
        assert "refused" in refused.text
    assert curl(endpoint, f"SELECT count() FROM {db}.predictions FINAL", token=token).text == "80\n"


def test_the_engine_is_readonly_even_behind_a_broken_guard(
    endpoint: ReadEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sinks.read_endpoint, "check_read_query", lambda sql, database: None)
    token = read_token(endpoint.settings)
    db = endpoint.settings.clickhouse_database
    assert curl(endpoint, "SELECT getSetting('readonly')", token=token).text == "1\n"
    for sql in (
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
        f"INSERT INTO {db}.predictions SELECT * FROM {db}.predictions",
        f"DROP TABLE {db}.predictions",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS max_result_rows = 0",
    ):
        answer = curl(endpoint, sql, token=token)
        assert answer.status_code == 500, sql
        assert "readonly" in answer.text.lower(), answer.text
    assert curl(endpoint, f"SELECT count() FROM {db}.predictions", token=token).text == "80\n"


def test_results_and_run_time_are_limited(settings: Settings, endpoint: ReadEndpoint) -> None:
    limited = settings.model_copy(
        update={"clickhouse_read_max_rows": 5, "clickhouse_read_timeout_s": 1.0}
    )
    served = ReadEndpoint(limited).start()
    try:
        token = read_token(settings)
        db = settings.clickhouse_database
        assert curl(served, "SELECT getSetting('max_result_rows')", token=token).text == "5\n"
        too_many = curl(served, f"SELECT * FROM {db}.predictions", token=token)
        assert too_many.status_code == 500
        assert "Limit for result exceeded" in too_many.text
        tables = ", ".join(f"{db}.predictions AS t{i}" for i in range(7))  # 80**7 rows
        too_long = curl(served, f"SELECT count() FROM {tables}", token=token)
        assert too_long.status_code == 500
        assert "Timeout exceeded" in too_long.text
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw:
            raw.sendall(
                f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
            )
            assert raw.recv(64).startswith(b"HTTP/1.0 413")  # refused before reading a byte
    finally:
        served.close()


def test_the_api_reads_still_work_through_the_endpoint(
    settings: Settings, endpoint: ReadEndpoint
) -> None:
    db = settings.clickhouse_database
    reader, direct = open_reader(settings, url=endpoint.url), connect(settings)
    for kind, joined in (("predictions", True), ("predictions", False), ("outcomes", False)):
        through = history_page(reader, db, "S3", T0, T0 + DAY, kind=kind, with_outcomes=joined)
        assert through.rows
        assert (
            through.rows
            == history_page(direct, db, "S3", T0, T0 + DAY, kind=kind, with_outcomes=joined).rows
        )
    accuracy = accuracy_by_model_day(reader, db, T0 - DAY, T0 + DAY)
    assert accuracy
    assert accuracy == accuracy_by_model_day(direct, db, T0 - DAY, T0 + DAY)
    psi = psi_by_feature_week(reader, db, T0 - DAY, T0 + 5 * DAY)
    assert psi
    assert psi == psi_by_feature_week(direct, db, T0 - DAY, T0 + 5 * DAY)
    joined = history_page(reader, db, "S3", T0, T0 + DAY, with_outcomes=True).rows
    assert any(r["realized_return"] is None for r in joined)  # join_use_nulls = 1 holds


# --- high if deployed on defaults: the public development secret -------------------------------
def _tickcast(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    return subprocess.run(
        [sys.executable, "-m", "tickcast.cli", *args],
        env={**base, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve", "--host", "0.0.0.0"], {}, "TICKCAST_JWT_SECRET is the public development"),
        (["serve"], {"TICKCAST_API_HOST": "0.0.0.0"}, "TICKCAST_JWT_SECRET is the public"),
        (["serve"], {"TICKCAST_ENV": "production"}, "TICKCAST_JWT_SECRET must be set"),
        (
            ["serve"],
            {"TICKCAST_ENV": "production", "TICKCAST_JWT_SECRET": "x"},
            "TICKCAST_JWT_SECRET must be at least 32 bytes, got 1",
        ),
    ],
)
def test_serving_the_public_secret_or_a_short_one_refuses_to_start(
    args: list[str], env: dict[str, str], message: str
) -> None:
    port = str(free_port())
    done = _tickcast(*args, "--port", port, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(port))) != 0  # nothing listens


async def test_a_token_forged_with_the_development_secret_is_refused(settings: Settings) -> None:
    forged = jwt.encode(
        {"sub": "user:ghost", "role": "admin", "scope": "keys:admin models:write",
         "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sid": "x",
         "iat": 1_900_000_000 - 60, "exp": 1_900_000_000, "jti": "forged"},
        DEV_SECRET, algorithm="HS256",
    )  # fmt: skip
    app = create_app(settings.model_copy(update={"jwt_secret": SecretStr(REAL_SECRET)}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/v1/keys", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401


# --- medium: credentials in /readyz and `tickcast config` --------------------------------------
async def test_readyz_shows_no_dependency_password(settings: Settings) -> None:
    leaky = settings.model_copy(
        update={
            "clickhouse_dsn": f"http://default:{PASSWORD}@127.0.0.1:9/",
            "mlflow_tracking_uri": f"http://mlflow:{PASSWORD}@127.0.0.1:9",
        }
    )
    app = create_app(leaky)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/readyz")
    assert PASSWORD not in ready.text
    checks = ready.json()["checks"]
    assert checks["clickhouse"]["ok"] is False
    assert "http://default:***@127.0.0.1:9/" in checks["clickhouse"]["error"]
    assert checks["mlflow"]["ok"] is False
    assert "http://mlflow:***@127.0.0.1:9" in checks["mlflow"]["error"]


def test_tickcast_config_and_status_show_no_dsn_password() -> None:
    dsn = f"http://default:{PASSWORD}@127.0.0.1:9/"
    shown = _tickcast("config", TICKCAST_CLICKHOUSE_DSN=dsn, COLUMNS="250")
    assert shown.returncode == 0, shown.stderr
    assert PASSWORD not in shown.stdout + shown.stderr
    assert "http://default:***@127.0.0.1:9/" in shown.stdout
    status = _tickcast("status", TICKCAST_CLICKHOUSE_DSN=dsn, COLUMNS="250")
    assert PASSWORD not in status.stdout + status.stderr
    assert "default:***@" in status.stdout


# --- info: metrics servers -------------------------------------------------------------------
def test_metrics_servers_bind_loopback_unless_configured(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve_metrics(0)
    try:
        assert server._server.server_address[0] == "127.0.0.1"  # type: ignore[attr-defined]
    finally:
        server.close()
    assert inspect.signature(run_lag_exporter).parameters["addr"].default == "127.0.0.1"
    bound: list[str] = []
    monkeypatch.setattr(agents.worker, "serve_metrics", lambda port, addr: bound.append(addr))
    monkeypatch.setattr(agents.worker, "run_direct_worker", lambda settings: None)
    agents.worker.run_worker(settings, metrics_port=0)
    agents.worker.run_worker(settings.model_copy(update={"metrics_host": "0.0.0.0"}), 0)
    assert bound == ["127.0.0.1", "0.0.0.0"]  # TICKCAST_METRICS_HOST decides
    (configmap,) = yaml.safe_load_all((REPO_ROOT / "infra/k8s/configmap.yaml").read_text())
    assert configmap["data"]["TICKCAST_METRICS_HOST"] == "0.0.0.0"  # pods: Prometheus scrapes
