"""An alert goes all the way: the real Prometheus evaluates the project's rules, fires into a
real Alertmanager running the project's routing, which delivers to local webhook receivers.

The project's ``monitoring/alertmanager/alertmanager.yml`` is used as it is, except that its
two receivers point at this test's HTTP server (``/pagerduty`` stands in for PagerDuty) and
the waits are seconds, not minutes. A scrape target nobody serves makes ``TargetDown`` fire
(``for`` set to 0s): critical, so it must reach both receivers, named and labelled.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.alertmanager_runner import AlertmanagerRunner
from devtools.prometheus_runner import PrometheusRunner, free_port

pytestmark = pytest.mark.integration

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


class Receiver:
    """A local HTTP server recording each webhook delivery by path."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.deliveries.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self, alertname: str) -> set[str]:
        return {
            path
            for path, body in self.deliveries
            if any(a["labels"].get("alertname") == alertname for a in body["alerts"])
        }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


def _test_config(receiver: Receiver) -> str:
    config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
    config["templates"] = [str(MONITORING / "alertmanager" / "*.tmpl")]
    config["route"].update(group_wait="1s", group_interval="2s", repeat_interval="1m")
    for route in config["route"]["routes"]:
        route.pop("group_wait", None)
    for receiver_config in config["receivers"]:
        name = receiver_config["name"]
        path = "/pagerduty" if name == "pagerduty" else "/team"
        receiver_config.pop("pagerduty_configs", None)
        receiver_config["webhook_configs"] = [{"url": receiver.url + path, "send_resolved": True}]
    return yaml.safe_dump(config, sort_keys=False)


def test_a_firing_critical_alert_reaches_the_pager_and_the_team(
    receiver: Receiver, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: up == 0
    manager = AlertmanagerRunner(_test_config(receiver), workdir=tmp_path / "am")
    prometheus = PrometheusRunner(
        {"worker": dead}, rule_for="0s", alertmanagers=[manager.address], workdir=tmp_path / "p"
    )
    with manager, prometheus.start():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(receiver.paths("TargetDown")) < 2:
            time.sleep(0.5)
    assert receiver.paths("TargetDown") == {"/pagerduty", "/team"}, manager.log_tail()
    body = next(b for p, b in receiver.deliveries if p == "/team" and b["status"] == "firing")
    alert = next(a for a in body["alerts"] if a["labels"]["alertname"] == "TargetDown")
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == "worker"
    assert alert["labels"]["instance"] == dead
    assert "cannot scrape worker" in alert["annotations"]["summary"]
    assert alert["annotations"]["runbook"] == "docs/operations.md#target-down"
    # warnings never page: no delivery to the pager names a warning
    assert all(
        a["labels"].get("severity") == "critical"
        for p, b in receiver.deliveries
        if p == "/pagerduty"
        for a in b["alerts"]
    )
