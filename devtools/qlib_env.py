"""pyqlib in a virtualenv of its own: Qlib's expression engine, the reference for Alpha158.

pyqlib is not a dependency of tickcast (it pulls in a research stack: mlflow, cvxpy, gym,
jupyter...), so ``tests/unit/indicators/alpha158/test_qlib.py`` runs Qlib in this
environment, built once (``make qlib-env``, part of ``make deps``: about 1.4 GB and four
minutes on a cold cache) into ``<data_dir>/datasets/venvs/`` from PyPI, pinned by
``devtools/constraints-pyqlib-<version>.txt``::

    python -m devtools.qlib_env        # build it, print its python
"""

from __future__ import annotations

from pathlib import Path

from devtools.venvs import ensure_env, env_dir

PYQLIB_VERSION = "0.9.7"
CONSTRAINTS = Path(__file__).with_name(f"constraints-pyqlib-{PYQLIB_VERSION}.txt")
_HINT = (
    "pip needs PyPI to build pyqlib's virtualenv once: run `make qlib-env` with network, "
    "or put a wheel mirror in PIP_INDEX_URL"
)


def qlib_python(base: Path | None = None) -> Path:
    """The python of the pinned pyqlib environment under ``base`` (built if missing)."""
    from devtools.datasets import default_cache_dir

    root = (base or default_cache_dir()) / "venvs"
    target = env_dir(root, f"pyqlib-{PYQLIB_VERSION}", CONSTRAINTS)
    return ensure_env(
        target, CONSTRAINTS, f"pyqlib=={PYQLIB_VERSION}", component="pyqlib", hint=_HINT
    )


if __name__ == "__main__":
    print(qlib_python())
