"""MLflow: a sqlite tracking store + artifact folder by default, a server URI in production."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

from tickcast.config import Settings
from tickcast.health import Health
from tickcast.redaction import redact


def prepare(settings: Settings) -> None:
    """Create the local store's folders (a no-op for a server URI)."""
    uri = urlparse(settings.mlflow_uri)
    if uri.scheme == "sqlite":
        Path(uri.path).parent.mkdir(parents=True, exist_ok=True)
        Path(settings.mlflow_artifacts).mkdir(parents=True, exist_ok=True)


def start(settings: Settings) -> Health:
    """Prepare the local store (creating its tables on first use) and check it."""
    prepare(settings)
    return check(settings)


def check(settings: Settings, timeout: float = 5.0) -> Health:
    """Ask the tracking store for an experiment; a server is asked its /health first."""
    start = time.perf_counter()
    uri = settings.mlflow_uri
    try:
        if uri.startswith(("http://", "https://")):
            import httpx

            httpx.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
        else:
            prepare(settings)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:
        return Health(
            "mlflow",
            False,
            redact(f"{uri}: {exc}").splitlines()[0][:300],
            "check TICKCAST_MLFLOW_TRACKING_URI (sqlite:///path or http(s)://server)",
            time.perf_counter() - start,
        )
    return Health("mlflow", True, f"tracking store {uri}", seconds=time.perf_counter() - start)
