"""Run a real Prometheus server for tests and local operations, and query it.

:class:`PrometheusRunner` writes a throw-away configuration that scrapes the given targets every
second with the project's alert rules (``monitoring/alerts.yml``) loaded, starts
``prometheus`` on a free loopback port with its own temporary TSDB, waits for ``/-/ready`` and
answers PromQL through the HTTP API (``/api/v1/query``, ``/api/v1/alerts``,
``/api/v1/targets``). :func:`rules_with_for` rewrites every rule's ``for`` (e.g. to ``0s``) so an
integration test sees an alert fire without waiting minutes; the expressions stay the project's.

The binary is Debian's ``prometheus`` package (``scripts/install-system-deps.sh``).

From a shell, scrape a local worker and lag exporter until Ctrl-C::

    python -m devtools.prometheus_runner worker=127.0.0.1:9101 lag=127.0.0.1:9308
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tickcast.errors import DependencyError

MONITORING = Path(__file__).resolve().parents[1] / "monitoring"
#: The project's alert rules.
ALERTS = MONITORING / "alerts.yml"
_HINT = "install Debian's 'prometheus' package: scripts/install-system-deps.sh"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str:
    """Path of the ``prometheus`` executable (:class:`DependencyError` when missing)."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        raise DependencyError("prometheus", "the prometheus binary is not installed", _HINT)
    return found


def rules_with_for(rules_text: str, duration: str | None) -> str:
    """The rule file ``rules_text`` with every alert's ``for`` set to ``duration``.

    ``None`` returns the text unchanged. Expressions, labels and annotations are untouched.

    >>> text = "groups: [{name: g, rules: [{alert: A, expr: up == 0, for: 5m}]}]"
    >>> yaml.safe_load(rules_with_for(text, "0s"))["groups"][0]["rules"][0]["for"]
    '0s'
    """
    if duration is None:
        return rules_text
    doc = yaml.safe_load(rules_text)
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "alert" in rule:
                rule["for"] = duration
    return yaml.safe_dump(doc, sort_keys=False)


def render_config(
    targets: Mapping[str, Sequence[str]],
    rule_files: Sequence[Path] = (),
    *,
    scrape_interval_s: float = 1.0,
    evaluation_interval_s: float | None = None,
    alertmanagers: Sequence[str] = (),
) -> str:
    """A Prometheus configuration scraping ``{job: [host:port, ...]}`` at ``scrape_interval_s``
    and sending firing alerts to ``alertmanagers`` (``host:port``).

    >>> cfg = yaml.safe_load(render_config({"worker": ["127.0.0.1:9101"]}))
    >>> cfg["scrape_configs"][0]["job_name"], cfg["global"]["scrape_interval"]
    ('worker', '1000ms')
    """
    interval = f"{round(scrape_interval_s * 1000)}ms"
    evaluation = f"{round((evaluation_interval_s or scrape_interval_s) * 1000)}ms"
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": evaluation,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
            for job, addresses in targets.items()
        ],
    }
    if alertmanagers:
        doc["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return yaml.safe_dump(doc, sort_keys=False)


class PrometheusRunner:
    """A ``prometheus`` child process scraping ``targets``; use it as a context manager.

    ``targets`` maps a job name to ``host:port`` addresses (or one address). ``rules`` is the
    rule file loaded (default ``monitoring/alerts.yml``, ``None`` for none); ``rule_for``
    rewrites every alert's ``for`` (see :func:`rules_with_for`).
    """

    def __init__(
        self,
        targets: Mapping[str, str | Sequence[str]],
        *,
        rules: Path | None = ALERTS,
        rule_for: str | None = None,
        scrape_interval_s: float = 1.0,
        port: int | None = None,
        workdir: Path | None = None,
        binary: str | None = None,
        alertmanagers: Sequence[str] = (),
    ) -> None:
        self.alertmanagers = list(alertmanagers)
        self.targets = {
            job: [addr] if isinstance(addr, str) else list(addr) for job, addr in targets.items()
        }
        self.rules = rules
        self.rule_for = rule_for
        self.scrape_interval_s = scrape_interval_s
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._binary = binary
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tickcast-prometheus-"))
        self.log = self.workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10.0)

    # --- lifecycle ----------------------------------------------------------------------------
    def write_config(self) -> Path:
        """Write the rule file copy and the configuration into ``workdir``; return the config."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        rule_files: list[Path] = []
        if self.rules is not None:
            copy = self.workdir / "rules.yml"
            copy.write_text(rules_with_for(self.rules.read_text(), self.rule_for))
            rule_files.append(copy)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            render_config(
                self.targets,
                rule_files,
                scrape_interval_s=self.scrape_interval_s,
                alertmanagers=self.alertmanagers,
            )
        )
        return config

    def start(self, timeout_s: float = 60.0) -> PrometheusRunner:
        """Start Prometheus and wait until it is ready."""
        config = self.write_config()
        command = [
            self._binary or prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def running(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of Prometheus's own log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll ``/-/ready``; :class:`DependencyError` with the log tail if it never answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise DependencyError("prometheus", f"exited early:\n{self.log_tail()}", _HINT)
            try:
                if self._http.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise DependencyError(
            "prometheus", f"not ready after {timeout_s:.0f} s:\n{self.log_tail()}", _HINT
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop Prometheus (SIGTERM, then SIGKILL) and remove its temporary directory."""
        self._http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- HTTP API -----------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``; returns ``data``, raises :class:`DependencyError` on error."""
        try:
            response = self._http.get(f"/api/v1/{path}", params=params)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DependencyError("prometheus", f"GET /api/v1/{path}: {exc}") from exc
        if body.get("status") != "success":
            raise DependencyError(
                "prometheus", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector of ``expr``: ``[{"metric": {labels}, "value": float}]``."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        if data["resultType"] != "vector":
            raise DependencyError("prometheus", f"{expr!r} gave a {data['resultType']}")
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (``None`` when empty; error when several series)."""
        result = self.query(expr)
        if len(result) > 1:
            raise DependencyError("prometheus", f"{expr!r} gave {len(result)} series, wanted 1")
        return result[0]["value"] if result else None

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) as ``/api/v1/alerts`` lists them."""
        return list(self.api("alerts")["alerts"])

    def target_health(self) -> dict[str, str]:
        """``{job: health}`` of every active target (``up``, ``down``, ``unknown``)."""
        active = self.api("targets", state="active")["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout_s: float = 60.0,
        interval_s: float = 0.5,
    ) -> list[dict[str, Any]]:
        """Query ``expr`` until ``predicate(result)`` holds; the last result either way."""
        deadline = time.monotonic() + timeout_s
        result = self.query(expr)
        while not predicate(result) and time.monotonic() < deadline:
            if not self.running():
                raise DependencyError("prometheus", f"exited:\n{self.log_tail()}")
            time.sleep(interval_s)
            result = self.query(expr)
        return result


def main(argv: Sequence[str] | None = None) -> None:
    """Scrape ``job=host:port`` targets with the alert rules until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("targets", nargs="+", help="job=host:port, e.g. worker=127.0.0.1:9101")
    parser.add_argument("--port", type=int, default=9090, help="Prometheus web port")
    parser.add_argument("--interval", type=float, default=1.0, help="scrape interval (s)")
    args = parser.parse_args(argv)
    targets: dict[str, list[str]] = {}
    for item in args.targets:
        job, _, address = item.partition("=")
        targets.setdefault(job, []).append(address)
    runner = PrometheusRunner(targets, port=args.port, scrape_interval_s=args.interval)
    with runner:
        print(f"prometheus on {runner.url} scraping {targets}; Ctrl-C stops it", flush=True)
        try:
            while runner.running():
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
