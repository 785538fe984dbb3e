"""Pinned virtualenvs of their own for tools that never join the project's venv.

Airflow (``devtools.airflow_env``) and pyqlib (``devtools.qlib_env``) pin hundreds of
packages of their own, so each lives in a virtualenv built once from PyPI with a pinned
constraints file (a ``pip freeze`` of a clean install), named after the file's digest so a
new pin builds a new environment. ``make deps`` builds both, so the test suite never spends
its time on pip; a test run without them builds them on first use.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from tickcast.errors import DependencyError


def env_dir(base: Path, name: str, constraints: Path) -> Path:
    """Where the environment ``name`` pinned by ``constraints`` lives under ``base``."""
    digest = hashlib.sha256(constraints.read_bytes()).hexdigest()[:12]
    return base / f"{name}-{digest}"


def ensure_env(
    target: Path, constraints: Path, requirement: str, *, component: str, hint: str
) -> Path:
    """``target``'s python, building the environment first if it is missing.

    Built into a ``.partial`` folder and renamed when complete, so a failed build is never
    mistaken for a finished one; :class:`DependencyError` when pip cannot install. Its
    scripts keep the ``.partial`` path in their shebangs: run tools as ``python -m``.
    """
    python = target / "bin" / "python"
    if python.exists():
        return python
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(partial)],
        [str(partial / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", "-c", str(constraints), requirement],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise DependencyError(component, f"{' '.join(step[:4])}: {' | '.join(tail)}", hint)
    partial.rename(target)
    return python
