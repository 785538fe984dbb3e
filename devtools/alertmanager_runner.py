"""Run Debian's Alertmanager for tests: a given configuration, a free loopback port, its own
storage, no cluster; :meth:`AlertmanagerRunner.start` waits for ``/-/ready``."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from devtools.prometheus_runner import free_port
from tickcast.errors import DependencyError

_HINT = "install Debian's 'prometheus-alertmanager' package: scripts/install-system-deps.sh"


class AlertmanagerRunner:
    """A ``prometheus-alertmanager`` child process; use it as a context manager."""

    def __init__(self, config_text: str, workdir: Path | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tickcast-alertmanager-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "alertmanager.yml"
        self.config.write_text(config_text, encoding="utf-8")
        self.log = self.workdir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> AlertmanagerRunner:
        """Start it and wait until it is ready (:class:`DependencyError` with its log)."""
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise DependencyError("alertmanager", "the alertmanager binary is not installed", _HINT)
        command = [
            binary, f"--config.file={self.config}", f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}", "--cluster.listen-address=",
            "--log.level=warn",
        ]  # fmt: skip
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DependencyError("alertmanager", f"exited early: {self.log_tail()}", _HINT)
            try:
                if httpx.get(f"http://{self.address}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise DependencyError("alertmanager", f"not ready: {self.log_tail()}", _HINT)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of its log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> AlertmanagerRunner:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
