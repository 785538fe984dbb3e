"""Test harness: the real local stack started once per session, a fresh namespace per test.

Integration tests ask for ``settings`` (a namespaced :class:`Settings`): its topic prefix,
Redis key prefix and ClickHouse database are unique to the test. A component that cannot
start makes those tests fail with the reason; nothing is skipped.

Skip policy: no test calls ``pytest.skip`` or ``importorskip``. A missing component
(redis-server, the broker, a package registry that set-up needs) fails the test that needs
it, with its reason and how to fix it; first-party modules are imported plainly, so a broken
one fails loudly.
"""

from __future__ import annotations

import uuid

import pytest

from tickcast.config import Settings


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The embedded-default settings the suite runs on (environment overrides apply)."""
    return Settings()


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Settings:
    """Start (or reuse) Kafka, Redis, ClickHouse and MLflow; fail loudly when one cannot."""
    from devtools.stack import local

    broken = [h for h in local.up(base_settings) if not h.ok]
    if broken:
        pytest.fail("; ".join(f"{h.component}: {h.detail}" for h in broken), pytrace=False)
    return base_settings


@pytest.fixture
def namespace() -> str:
    """A short unique name for one test's topics, keys and database."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def settings(stack: Settings, namespace: str) -> Settings:
    """Settings isolated to this test: topic prefix, Redis key prefix, ClickHouse database."""
    return stack.model_copy(
        update={
            "topic_prefix": f"{namespace}.",
            "redis_key_prefix": f"{namespace}:",
            "clickhouse_database": namespace,
            "consumer_group": f"{namespace}-group",
        }
    )
