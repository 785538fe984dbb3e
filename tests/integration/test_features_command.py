"""``tickcast features SYMBOL`` names the columns of whichever named set the worker wrote,
side columns included (#22), and refuses a version of no named set; real redis-server."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from sidestreams.feature_sets import named
from sinks.feature_blob import encode
from sinks.redis_keys import feature_key
from tickcast.config import Settings
from tickcast.processes import child_env

pytestmark = pytest.mark.integration


def _features(settings: Settings, symbol: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickcast.cli", "features", symbol],
        env={**child_env(settings, **env), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_features_command_names_a_side_set(settings: Settings) -> None:
    fs = named("classic+side", settings.model_copy(update={"side_macro_series": "realgdp"}))
    client = redis.Redis.from_url(settings.redis_url)
    now = int(time.time() * 1000)
    values = [float(i) for i in range(len(fs))]
    client.set(feature_key(settings.redis_key_prefix, "AAPL"), encode(now, now, fs.version, values))
    done = _features(settings, "AAPL", TICKCAST_SIDE_MACRO_SERIES="realgdp")
    assert done.returncode == 0, done.stderr
    assert "macro_realgdp" in done.stdout
    assert "rel_market_ret" in done.stdout
    other = _features(settings, "AAPL", TICKCAST_SIDE_MACRO_SERIES="unemp")  # another version
    assert other.returncode == 1
    assert "none of this build's named sets" in other.stderr
