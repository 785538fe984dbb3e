"""What every command-line entry shares: its settings and how it logs.

Each process's CLI lives in that process's home (``agents/cli.py``, ``sinks/cli.py``, …);
``tickcast/cli.py`` only assembles them.
"""

from __future__ import annotations

import logging
import os

from tickcast.config import Settings, load_settings
from tickcast.logging import configure_logging
from tickcast.tracing import configure as configure_tracing


def settings(service: bool = False, traced_as: str | None = None) -> Settings:
    """Settings for a command; services log JSON at the configured level, people see warnings.

    ``traced_as`` names a process that traces when the ``OTEL_*`` variables ask for it
    (tickcast.tracing); without it, the command never traces.
    """
    loaded = load_settings()
    if traced_as is not None:
        configure_tracing(traced_as, loaded)
    if service:
        configure_logging(loaded.log_level, json=loaded.log_json)
    else:
        level = "WARNING" if loaded.log_level.upper() == "INFO" else loaded.log_level
        configure_logging(level, json=False)
        # MLflow's progress bars and INFO lines are noise on a person's terminal.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        logging.getLogger("mlflow").setLevel(logging.ERROR)
    return loaded
