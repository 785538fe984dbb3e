"""tickcast's daily jobs for teams that schedule with Apache Airflow (3.x).

The same jobs as infra/k8s/training-cronjob.yaml and backup-cronjob.yaml, as one DAG of
``BashOperator`` tasks that call the ``tickcast`` CLI, so the Airflow worker needs only the
tickcast package and its ``TICKCAST_*`` settings (environment or ``.env``)::

    backup                      tickcast backup --to <backups>/<run time>
    train_and_register          tickcast train ... (walk-forward, fit, register in MLflow)
      >> promote                tickcast learner promote NAME VERSION (only when asked)

``tickcast train`` registers what it fits (the first model of a name becomes the champion,
later ones challengers), so training and registration are one task. Promotion moves the
champion alias by hand: trigger the DAG with ``promote_version`` set (and a reason);
otherwise the task exits 99, which Airflow records as skipped. The backup does not wait for
training, nor training for the backup: each fails or succeeds on its own.

Copy this file into your DAG folder; ``tests/integration/test_airflow_dag.py`` loads it with
Airflow's own ``DagBag`` (docs/deployment.md, "Airflow").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

#: Exit code BashOperator turns into "skipped" (its ``skip_on_exit_code`` default).
SKIP = 99

with DAG(
    dag_id="tickcast_daily",
    description="Back up tickcast, train and register direction models, optionally promote.",
    schedule="30 2 * * *",  # after the US close, as the training CronJob
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two trainings would race to register the same name
    dagrun_timeout=timedelta(hours=6),
    default_args={"owner": "tickcast", "retries": 1, "retry_delay": timedelta(minutes=10)},
    params={
        "dataset": Param("/data/bars.parquet", type="string",
                         description="Data set name or a CSV/Parquet bar file."),
        "horizon": Param(1, type="integer", minimum=1, description="Horizon in bars."),
        "metric": Param("auc", type="string", description="Metric that picks the champion."),
        "backups": Param("/backups", type="string", description="Folder of the backups."),
        "model_name": Param("tickcast-direction-h1", type="string",
                            description="Registered model that promote_version belongs to."),
        "promote_version": Param("", type="string",
                                 description="Version to make champion; empty: no promotion."),
        "promote_reason": Param("", type="string", description="Why (recorded with the move)."),
    },
    tags=["tickcast"],
) as dag:  # fmt: skip
    backup = BashOperator(
        task_id="backup",
        bash_command=('tickcast backup --to "{{ params.backups }}/{{ ts_nodash }}"'),
        execution_timeout=timedelta(hours=2),
    )
    train_and_register = BashOperator(
        task_id="train_and_register",
        bash_command=(
            'tickcast train --dataset "{{ params.dataset }}" --symbols 0 '
            '--horizon {{ params.horizon }} --metric "{{ params.metric }}"'
        ),
        execution_timeout=timedelta(hours=4),
    )
    promote = BashOperator(
        task_id="promote",
        bash_command=(
            f'[ -n "{{{{ params.promote_version }}}}" ] || exit {SKIP}; '
            'tickcast learner promote "{{ params.model_name }}" "{{ params.promote_version }}" '
            "--reason \"{{ params.promote_reason or 'promoted from Airflow' }}\" "
            '--actor "airflow:{{ dag.dag_id }}/{{ run_id }}"'
        ),
        skip_on_exit_code=SKIP,
        retries=0,
    )
    train_and_register >> promote
