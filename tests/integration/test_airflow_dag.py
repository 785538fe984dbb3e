"""infra/airflow/tickcast_training_dag.py, loaded by Airflow's own DagBag.

Airflow runs in a virtualenv of its own (``devtools.airflow_env``: built once from PyPI with
pinned constraints, then cached under the data dir; ``make airflow-env`` builds it with the
other dependencies). One DagBag run loads a folder holding the DAG file and a broken DAG: the
real one must load with no import error, the broken one must be reported, so the check can
fail. The tasks' shell commands, rendered as Airflow renders them, must be ``tickcast``
commands and options that exist, and ``promote`` must skip when no version is given.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import typer.main

from devtools.airflow_env import DAGS, parse_dags
from tickcast.cli import app
from tickcast.config import Settings

pytestmark = pytest.mark.integration

DAG_FILE = DAGS / "tickcast_training_dag.py"
BROKEN = "from airflow.sdk import DAG\nwith DAG(dag_id='broken', schedule='@daily') as dag:\n" \
    "    undefined_operator(task_id='x')\n"  # fmt: skip


@pytest.fixture(scope="module")
def report(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("dags")
    shutil.copy(DAG_FILE, folder / DAG_FILE.name)
    (folder / "broken_dag.py").write_text(BROKEN)
    return parse_dags(folder, base_settings.data_dir)


def test_airflow_loads_the_dag_and_reports_the_broken_one(report: dict[str, Any]) -> None:
    errors = report["import_errors"]
    assert [Path(path).name for path in errors] == ["broken_dag.py"], errors
    assert "undefined_operator" in next(iter(errors.values()))
    assert set(report["dags"]) == {"tickcast_daily"}


def test_the_dag_backs_up_trains_and_optionally_promotes(report: dict[str, Any]) -> None:
    dag = report["dags"]["tickcast_daily"]
    tasks = dag["tasks"]
    assert {name: t["downstream"] for name, t in tasks.items()} == {
        "backup": [], "train_and_register": ["promote"], "promote": [],
    }  # fmt: skip
    assert {t["operator"] for t in tasks.values()} == {"BashOperator"}
    assert tasks["promote"]["skip_on_exit_code"] == [99]
    assert dag["max_active_runs"] == 1
    assert "30 2 * * *" in dag["schedule"]
    assert dag["params"]["promote_version"] == ""


def _render(command: str, params: dict[str, Any]) -> str:
    context = {"params": params, "ts_nodash": "20260101T023000", "run_id": "scheduled__x",
               "dag": {"dag_id": "tickcast_daily"}}  # fmt: skip
    return (
        jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(command).render(**context)
    )


def _tickcast_calls(script: str) -> list[list[str]]:
    words = shlex.split(script.replace(";", " ; "))
    calls: list[list[str]] = []
    current: list[str] | None = None
    for word in [*words, ";"]:
        if word in {";", "&&", "||", "|"}:
            if current is not None:
                calls.append(current)
            current = None
        elif current is not None:
            current.append(word)
        elif word == "tickcast":
            current = []
    return calls


def _check_command(argv: list[str]) -> None:
    command: Any = typer.main.get_command(app)
    args = list(argv)
    while args and hasattr(command, "commands") and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"`tickcast {' '.join(argv)}`: no command {name!r}"
        command = command.commands[name]
    known = {opt for param in command.params for opt in param.opts}
    options = [a for a in args if a.startswith("--")]
    assert set(options) <= known, f"`tickcast {' '.join(argv)}`: unknown {set(options) - known}"


def test_every_task_runs_tickcast_commands_that_exist(report: dict[str, Any]) -> None:
    dag = report["dags"]["tickcast_daily"]
    params = {**dag["params"], "promote_version": "3"}
    seen = []
    for task in dag["tasks"].values():
        for argv in _tickcast_calls(_render(task["bash_command"], params)):
            _check_command(argv)
            seen.append(" ".join(argv[:2]))
    assert sorted(seen) == ["backup --to", "learner promote", "train --dataset"]


def test_promote_skips_without_a_version(report: dict[str, Any]) -> None:
    dag = report["dags"]["tickcast_daily"]
    script = _render(dag["tasks"]["promote"]["bash_command"], dag["params"])
    done = subprocess.run(["bash", "-c", script], capture_output=True, check=False, timeout=30)
    assert done.returncode == 99  # Airflow's skip code: no `tickcast` was started
