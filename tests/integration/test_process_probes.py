"""The sink and drift processes serve ``/metrics``, which their Kubernetes probes call.

``infra/k8s/sink-deployment.yaml`` and ``drift-deployment.yaml`` run ``--metrics-port`` and
probe that port; here the real commands run on the real stack (a fresh namespace) and the
page answers with the series those processes update (ClickHouse op latency, PSI).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from devtools.prometheus_runner import free_port
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.processes import ServiceProcess

pytestmark = pytest.mark.integration


def _metrics_page(process: ServiceProcess, port: int, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.running(), f"{process.args} died:\n{process.log_tail()}"
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0)
            if response.status_code == 200:
                return response.text
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{process.args}: no /metrics after {timeout_s} s\n{process.log_tail()}")


@pytest.mark.parametrize(
    ("args", "series"),
    [
        (["sink", "run"], "tickcast_clickhouse_op_ms"),
        (["drift"], "data_drift_psi"),
    ],
    ids=["sink", "drift"],
)
def test_the_process_serves_its_metrics_on_the_probe_port(
    settings: Settings, tmp_path: Path, args: list[str], series: str
) -> None:
    apply_topics(settings)
    port = free_port()
    process = ServiceProcess(
        settings.model_copy(update={"data_dir": tmp_path, "clickhouse_read_port": 0}),
        [*args, "--metrics-port", str(port)],
        tmp_path / "process.log",
    ).start()
    try:
        page = _metrics_page(process, port)
    finally:
        process.stop()
    assert f"# TYPE {series} " in page
    assert "process_resident_memory_bytes" in page
