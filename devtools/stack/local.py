"""Bring the whole local stack up or down, and report every component's health."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable

from devtools.stack import kafka_broker, redis_server
from streams.kafka_admin import check_broker
from tickcast.config import Settings
from tickcast.health import Health
from training import mlflow_store


def _clickhouse_up(settings: Settings) -> Health:
    from sinks.clickhouse import check, connect
    from sinks.migrations import migrate

    client = connect(settings)
    migrate(client, settings.clickhouse_database)
    return check(settings, client)


def _clickhouse_check(settings: Settings) -> Health:
    from sinks.clickhouse import check

    return check(settings)


STARTERS: dict[str, Callable[[Settings], Health]] = {
    "kafka": kafka_broker.start,
    "redis": redis_server.start,
    "clickhouse": _clickhouse_up,
    "mlflow": mlflow_store.start,
}

CHECKS: dict[str, Callable[[Settings], Health]] = {
    "kafka": check_broker,
    "redis": redis_server.check,
    "clickhouse": _clickhouse_check,
    "mlflow": mlflow_store.check,
}


def up(settings: Settings, on_done: Callable[[Health], None] | None = None) -> list[Health]:
    """Start every component (idempotent); each Health carries how long its start took."""
    results = []
    for name, starter in STARTERS.items():
        began = time.perf_counter()
        health = starter(settings)
        health = Health(name, health.ok, health.detail, health.hint, time.perf_counter() - began)
        results.append(health)
        if on_done:
            on_done(health)
    return results


def down(settings: Settings) -> dict[str, bool]:
    """Stop what the project started locally (the demo's API and sink included)."""
    from devtools.stack.recorded import demo_pid_file, stop_recorded

    demo = bool(stop_recorded(demo_pid_file(settings)))
    return {
        "demo": demo,
        "kafka": kafka_broker.stop(settings),
        "redis": redis_server.stop(settings),
    }


def status(settings: Settings) -> list[Health]:
    """Every component's health, without starting anything."""
    return [check(settings) for check in CHECKS.values()]


def _tool(name: str, command: list[str], hint: str) -> Health:
    if shutil.which(command[0]) is None:
        return Health(name, False, f"{command[0]} not found on PATH", hint)
    done = subprocess.run(command, capture_output=True, text=True)
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout or done.stderr)
    line = text.strip().splitlines()[:1] or ["?"]
    return Health(name, done.returncode == 0, line[0], "" if done.returncode == 0 else hint)


def prerequisites() -> list[Health]:
    """Tools the local stack needs on this machine."""
    return [
        _tool("java", ["java", "-version"], "install Java 17 (apt-get install openjdk-17-jre)"),
        _tool("maven", ["mvn", "-v"], "install Maven (apt-get install maven)"),
        _tool(
            "redis-server",
            ["redis-server", "--version"],
            "apt-get install redis-server, or point TICKCAST_REDIS_URL at a running Redis",
        ),
    ]
