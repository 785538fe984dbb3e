"""The processes ``tickcast demo`` leaves running (its API and sink), recorded so the next
demo or ``tickcast down`` can stop them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tickcast.config import Settings


def demo_pid_file(settings: Settings) -> Path:
    """Where the demo records the processes it leaves running (the API and the sink)."""
    return settings.data_dir / "logs" / "demo.pids"


def stop_recorded(pid_file: Path, timeout_s: float = 30.0) -> int:
    """SIGTERM the tickcast processes listed in ``pid_file`` and wait; returns how many."""
    if not pid_file.exists():
        return 0
    stopped = 0
    for raw in pid_file.read_text().split():
        pid = int(raw)
        try:
            if b"tickcast.cli" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # the pid was reused by something else
            os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError):
            continue
        stopped += 1
        deadline = time.monotonic() + timeout_s
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    pid_file.unlink()
    return stopped


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
