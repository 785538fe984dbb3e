"""The Redis key layout is declared once (sinks/redis_keys.py) and both sides use it."""

from __future__ import annotations

import re
from pathlib import Path

from serving.redis_store import RedisLatestStore
from sinks import redis_keys
from sinks.redis_table import RedisTable

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (
    "tickcast", "indicators", "schemas", "finance", "streams", "sinks", "training",
    "online_learning", "agents", "monitoring", "serving", "backtesting", "devtools", "benchmarks",
)  # fmt: skip
# An f-string that builds a shared key itself: ``f"{prefix}features:{symbol}"``,
# ``f"{prefix}model-test"`` (``model-metrics`` alone is also a Kafka topic's name).
SPELT_KEY = re.compile(r"\}(features:|prediction:|view:|model-metrics|model-test)")


class _Client:
    def register_script(self, _: str) -> None:
        return None


def test_keys_are_the_layout_the_deployed_workers_and_apis_share() -> None:
    assert redis_keys.feature_key("tc:", "AAPL") == "tc:features:AAPL"
    assert redis_keys.prediction_key("tc:", "AAPL") == "tc:prediction:AAPL"
    assert redis_keys.prediction_key("tc:", "AAPL", redis_keys.CHALLENGER) == (
        "tc:prediction:AAPL:challenger"
    )
    assert redis_keys.view_key("tc:", 7) == "tc:view:7"
    assert redis_keys.view_pattern("tc:") == "tc:view:*"
    assert redis_keys.model_metrics_key("tc:") == "tc:model-metrics"
    assert redis_keys.model_test_key("tc:") == "tc:model-test"


def test_worker_and_api_read_and_write_the_same_keys() -> None:
    table = RedisTable(_Client(), "ns:", ttl_s=60)  # type: ignore[arg-type]
    store = RedisLatestStore(_Client(), prefix="ns:", feature_names=(), feature_set_version="v")  # type: ignore[arg-type]
    assert table.feature_key("MSFT") == store.feature_key("MSFT") == "ns:features:MSFT"
    assert table.prediction_key("MSFT") == store.prediction_key("MSFT") == "ns:prediction:MSFT"
    assert store.prediction_key("MSFT", "challenger") == redis_keys.prediction_key(
        "ns:", "MSFT", redis_keys.CHALLENGER
    )


def test_no_other_module_spells_a_shared_key() -> None:
    spelt = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "sinks" / "redis_keys.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SPELT_KEY.search(line)
    ]
    assert spelt == [], "build Redis keys with sinks.redis_keys"
