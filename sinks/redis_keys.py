"""The Redis key layout, declared once: the worker and the learner write, the API reads.

Keys (``<prefix>`` is ``TICKCAST_REDIS_KEY_PREFIX``)::

    <prefix>features:<SYMBOL>               feature blob (sinks.feature_blob), TTL feature_ttl_s
    <prefix>prediction:<SYMBOL>             JSON of the champion's latest prediction
                                            (schemas.serving), same TTL
    <prefix>prediction:<SYMBOL>:challenger  same JSON, the A/B challenger's (optional)
    <prefix>view:<PARTITION>                mark: the worker owning ticks partition
                                            <PARTITION> wrote its symbols here (gone = Redis
                                            lost them: rebuild)
    <prefix>model-metrics                   the learner's evaluation snapshot (JSON)
    <prefix>model-test                      the learner's champion/challenger test (JSON)
    <prefix>updates                         pub/sub channel: once per micro-batch, the JSON
                                            {"symbols": [...]} the worker just wrote (the
                                            console's live pages listen)

>>> feature_key("tc:", "AAPL"), prediction_key("tc:", "AAPL", CHALLENGER)
('tc:features:AAPL', 'tc:prediction:AAPL:challenger')
>>> view_key("tc:", 3), view_pattern("tc:"), model_metrics_key("tc:")
('tc:view:3', 'tc:view:*', 'tc:model-metrics')
"""

from __future__ import annotations

CHAMPION = ""
"""Suffix of the champion's prediction key (none)."""
CHALLENGER = ":challenger"
"""Suffix of the A/B challenger's prediction key."""
SUFFIXES = (CHAMPION, CHALLENGER)

MODEL_METRICS = "model-metrics"
MODEL_TEST = "model-test"
UPDATES = "updates"


def feature_key(prefix: str, symbol: str) -> str:
    """The key of a symbol's feature blob."""
    return f"{prefix}features:{symbol}"


def prediction_key(prefix: str, symbol: str, suffix: str = CHAMPION) -> str:
    """The key of a symbol's latest prediction (``suffix``: :data:`CHAMPION` or
    :data:`CHALLENGER`)."""
    return f"{prefix}prediction:{symbol}{suffix}"


def view_key(prefix: str, partition: int) -> str:
    """The mark saying partition ``partition``'s symbols are in this Redis."""
    return f"{prefix}view:{partition}"


def view_pattern(prefix: str) -> str:
    """The ``SCAN`` pattern of every view mark of ``prefix``."""
    return f"{prefix}view:*"


def model_metrics_key(prefix: str) -> str:
    """The key of the learner's evaluation snapshot."""
    return f"{prefix}{MODEL_METRICS}"


def model_test_key(prefix: str) -> str:
    """The key of the learner's champion/challenger test state."""
    return f"{prefix}{MODEL_TEST}"


def updates_channel(prefix: str) -> str:
    """The pub/sub channel on which the worker names the symbols of each written batch."""
    return f"{prefix}{UPDATES}"


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_METRICS",
    "MODEL_TEST",
    "SUFFIXES",
    "UPDATES",
    "feature_key",
    "model_metrics_key",
    "model_test_key",
    "prediction_key",
    "updates_channel",
    "view_key",
    "view_pattern",
]
