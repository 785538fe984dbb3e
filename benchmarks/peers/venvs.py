"""The peers' own virtualenvs, created on first use under ``.tickcast/bench-venvs/`` and reused.

Each holds the peer package at a pinned version, tickcast itself (editable, no
dependencies) and only the pinned dependencies that tickcast's decode, validation,
indicators and Redis blob need (``TICKCAST_DEPS``, versions from ``constraints.txt``), so
the peer runs tickcast's own code beside its own framework, not the project's environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Peer → (PyPI package, version measured, requirement installed).
PEERS: dict[str, tuple[str, str, str]] = {
    "quix": ("quixstreams", "3.28.1", "quixstreams==3.28.1"),
    "bytewax": ("bytewax", "0.21.1", "bytewax[kafka]==0.21.1"),
}

#: What the transform imports beyond the standard library (indicators, codecs, Redis).
TICKCAST_DEPS = (
    "fastavro",
    "numpy",
    "pandas",
    "sortedcontainers",
    "redis",
    "hiredis",
    "orjson",
)


def pinned(names: tuple[str, ...], constraints: Path = ROOT / "constraints.txt") -> list[str]:
    """``name==version`` of each name as ``constraints.txt`` pins it."""
    pins = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[name.lower().replace("_", "-")] = f"{name}=={version}"
    return [pins[n.lower().replace("_", "-")] for n in names]


def ensure_venv(peer: str, base: Path = ROOT / ".tickcast" / "bench-venvs") -> Path:
    """The python of ``peer``'s virtualenv, created (minutes, once) if missing."""
    package, version, requirement = PEERS[peer]
    home = base / f"{package}-{version}"
    python = home / "bin" / "python"
    done = home / ".complete"
    if done.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, requirement], check=True)
    # the peer's own requirements win; what it does not bring comes at tickcast's pins
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    )
    have = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.split()}
    missing = [n for n in TICKCAST_DEPS if n.lower() not in have]
    if missing:
        subprocess.run([*pip, *pinned(tuple(missing))], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    done.write_text(f"{requirement}\n")
    return python


if __name__ == "__main__":
    for name in sys.argv[1:] or list(PEERS):
        print(ensure_venv(name), flush=True)
