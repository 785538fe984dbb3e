"""Apache Airflow in a virtualenv of its own, to load ``infra/airflow`` with Airflow's DagBag.

Airflow pins a few hundred packages of its own, so it never joins the project's venv: it
is installed once into ``<data_dir>/airflow-<version>-<constraints hash>/`` from PyPI with
``infra/airflow/constraints-<version>.txt`` (a ``pip freeze`` of a clean install: about 130
packages, 290 MB, 30 s on a warm network). :func:`parse_dags` then runs Airflow's own
``DagBag`` on a folder in that environment and returns what it found::

    python -m devtools.airflow_env            # build the environment (make airflow-env)
    python -m devtools.airflow_env --parse infra/airflow
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from devtools import venvs
from tickcast.errors import DependencyError

AIRFLOW_VERSION = "3.3.2"
ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "infra" / "airflow" / f"constraints-{AIRFLOW_VERSION}.txt"
DAGS = ROOT / "infra" / "airflow"
_HINT = (
    "pip needs PyPI to build Airflow's virtualenv once: run `make airflow-env` with network, "
    "or put a wheel mirror in PIP_INDEX_URL"
)

#: Runs inside the Airflow environment: DagBag over argv[1], a JSON report on stdout.
_PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": str(getattr(dag, "schedule", None) or dag.timetable.description),
        "max_active_runs": dag.max_active_runs,
        "params": {k: dag.params[k] for k in dag.params},
        "tasks": {
            t.task_id: {"operator": type(t).__name__, "downstream": sorted(t.downstream_task_ids),
                        "bash_command": getattr(t, "bash_command", None),
                        "skip_on_exit_code": sorted(getattr(t, "skip_on_exit_code", None) or [])}
            for t in dag.tasks
        },
    }
print("\\n" + json.dumps(out))
"""


def env_dir(base: Path) -> Path:
    """Where the environment of this version and constraints lives under ``base``."""
    return venvs.env_dir(base, f"airflow-{AIRFLOW_VERSION}", CONSTRAINTS)


def ensure_env(base: Path) -> Path:
    """The Airflow environment's python, building the environment first if it is missing."""
    return venvs.ensure_env(
        env_dir(base), CONSTRAINTS, f"apache-airflow=={AIRFLOW_VERSION}",
        component="airflow", hint=_HINT,
    )  # fmt: skip


def parse_dags(folder: Path = DAGS, base: Path | None = None) -> dict[str, Any]:
    """Airflow's ``DagBag`` over ``folder``: ``{"import_errors": {...}, "dags": {...}}``."""
    from tickcast.config import load_settings

    python = ensure_env(base or load_settings().data_dir)
    with tempfile.TemporaryDirectory(prefix="tickcast-airflow-") as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        done = subprocess.run(
            [str(python), "-c", _PARSE, str(folder)],
            capture_output=True, text=True, env=env, check=False, timeout=300,
        )  # fmt: skip
    if done.returncode != 0:
        raise DependencyError("airflow", f"DagBag failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    """Build the environment (and with ``--parse FOLDER``, print what its DagBag loads)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--parse", type=Path, help="a DAG folder to load")
    args = parser.parse_args(argv)
    if args.parse is None:
        from tickcast.config import load_settings

        print(ensure_env(load_settings().data_dir))
        return
    print(json.dumps(parse_dags(args.parse), indent=2))


if __name__ == "__main__":
    main()
