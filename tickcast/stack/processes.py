"""Child processes of tickcast services (worker, sink, learner, API) for demos and tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tickcast.config import REPO_ROOT, Settings


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"TICKCAST_{name.upper()}"] = str(raw)
    env.update(extra)
    return env


class ServiceProcess:
    """``python -m tickcast.cli <args>`` in the background, its output in ``log``."""

    def __init__(self, settings: Settings, args: list[str], log: Path, **env: str) -> None:
        self.settings = settings
        self.args = args
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        """Start the process (its log is appended to)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tickcast.cli", *self.args],
                env=child_env(self.settings, **self.env),
                cwd=REPO_ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        return self

    def running(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
