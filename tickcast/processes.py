"""Child processes of tickcast services (worker, sink, learner, API) for demos and tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tickcast.config import REPO_ROOT, Settings

#: Names the inherited read end of the pipe a :class:`ServiceProcess` child watches.
LIFELINE_ENV = "TICKCAST_LIFELINE_FD"


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if isinstance(raw, list | tuple | set | frozenset):  # list settings read commas
            raw = ",".join(str(item) for item in raw)
        env[f"TICKCAST_{name.upper()}"] = str(raw)
    env.update(extra)
    return env


class ServiceProcess:
    """``python -m tickcast.cli <args>`` in the background, its output in ``log``.

    The child dies with this process, however it ends (even SIGKILL or a segfault): it holds
    the read end of a pipe whose write end only this process has, and stops itself (SIGTERM)
    at end-of-file (:func:`watch_lifeline`). :meth:`detach` lets it outlive us.
    """

    def __init__(self, settings: Settings, args: list[str], log: Path, **env: str) -> None:
        self.settings = settings
        self.args = args
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None

    def start(self) -> ServiceProcess:
        """Start the process (its log is appended to)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # os.pipe() fds are not inheritable (PEP 446): only this child gets the read end,
        # and no child ever gets the write end, so the pipe closes exactly when we die
        watched, self._lifeline = os.pipe()
        try:
            with self.log.open("ab") as handle:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "tickcast.cli", *self.args],
                    env=child_env(self.settings, **self.env, **{LIFELINE_ENV: str(watched)}),
                    cwd=REPO_ROOT,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    pass_fds=(watched,),
                )
        finally:
            os.close(watched)
        return self

    def detach(self) -> None:
        """Let the process outlive this one (a demo's API and sink, left running on purpose)."""
        if self._lifeline is not None:
            os.write(self._lifeline, b"d")
        self._drop_lifeline()

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
        self._drop_lifeline()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drop_lifeline()

    def _drop_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


#: Set by a SIGTERM that arrived before the service installed its own stop handler.
_STOP_REQUESTED = threading.Event()


def hold_sigterm_while_starting() -> None:
    """Until a service installs its own stop handler, a SIGTERM is remembered, not fatal.

    A worker's start-up (imports, the model set from MLflow, state restored from Kafka) takes
    seconds, more under load, and a rolling restart or a scale-down can stop it in that
    window. Python's default would kill it mid-way (exit -15, which reads as a crash, and
    a model download cut short). The runner reads :func:`stop_requested` once its own
    handler is in place and stops at once, cleanly, before consuming anything. Only for
    services: a batch job's SIGTERM stays fatal. (A handler raising ``SystemExit`` instead
    is not safe: it can land in a garbage-collection callback that swallows it.)
    """
    signal.signal(signal.SIGTERM, lambda _signum, _frame: _STOP_REQUESTED.set())


def stop_requested() -> bool:
    """True when a SIGTERM came during start-up (:func:`hold_sigterm_while_starting`)."""
    return _STOP_REQUESTED.is_set()


def watch_lifeline() -> None:
    """Stop this process (SIGTERM: a graceful stop) when the process that started it dies.

    Only for children of :class:`ServiceProcess`, which pass the read end of a pipe:
    end-of-file there means the parent is gone, one byte means it detached us.
    """
    raw = os.environ.pop(LIFELINE_ENV, None)  # not inherited by our own children
    if raw is None:
        return
    fd = int(raw)
    os.set_inheritable(fd, False)

    def watch() -> None:
        if os.read(fd, 1) == b"":
            os.kill(os.getpid(), signal.SIGTERM)
        os.close(fd)

    threading.Thread(target=watch, name="tickcast-lifeline", daemon=True).start()
