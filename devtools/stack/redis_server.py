"""Redis: use ``TICKCAST_REDIS_URL`` when it answers, else start Debian's ``redis-server``.

The local server gets a port of its own (from the URL), a data folder under ``data_dir``,
append-only persistence (fsync every second) plus RDB snapshots, and a pid file.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.health import Health

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check(settings: Settings, timeout: float = 1.0) -> Health:
    """Ping Redis at the configured URL."""
    start = time.perf_counter()
    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        client.ping()
        info = client.info("server")
        client.close()
    except (redis.RedisError, OSError) as exc:
        return Health(
            "redis",
            False,
            f"{settings.redis_url} does not answer: {exc}",
            "run `tickcast up` or set TICKCAST_REDIS_URL to a reachable Redis",
            time.perf_counter() - start,
        )
    return Health(
        "redis",
        True,
        f"redis {info.get('redis_version')} at {settings.redis_url}",
        seconds=time.perf_counter() - start,
    )


def _paths(settings: Settings) -> tuple[Path, Path]:
    folder = settings.data_dir / "redis"
    return folder, folder / "redis.pid"


def start(settings: Settings) -> Health:
    """Start a local redis-server for the configured URL unless one already answers."""
    health = check(settings)
    if health.ok:
        return health
    url = urlparse(settings.redis_url)
    if url.hostname not in _LOCAL_HOSTS:
        raise DependencyError("redis", health.detail, "a remote Redis must be started by its owner")
    binary = shutil.which("redis-server")
    if binary is None:
        raise DependencyError(
            "redis",
            "redis-server is not installed",
            "run `make deps` (apt-get install redis-server) or set TICKCAST_REDIS_URL",
        )
    folder, pidfile = _paths(settings)
    folder.mkdir(parents=True, exist_ok=True)
    port = url.port or 6379
    subprocess.run(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(folder / "redis.log"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "300 10",
            "--protected-mode",
            "yes",
        ],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = check(settings, timeout=0.5)
        if health.ok:
            return health
        time.sleep(0.05)
    raise DependencyError("redis", "redis-server did not answer within 10 s", str(folder))


def stop(settings: Settings) -> bool:
    """Stop the local redis-server this project started; True when one was running."""
    _, pidfile = _paths(settings)
    if not pidfile.exists():
        return False
    # shutdown closes the connection under us: that error is the success case
    with contextlib.suppress(redis.RedisError, OSError):
        redis.Redis.from_url(settings.redis_url, socket_timeout=2).shutdown(nosave=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and check(settings, timeout=0.2).ok:
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True
