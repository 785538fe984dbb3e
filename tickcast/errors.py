"""Typed errors of tickcast.

TickcastError
├── ConfigError           bad or missing configuration (one line for a person)
├── DependencyError       a component (Kafka, Redis, ClickHouse, MLflow, Java) is unusable
├── SchemaError           a record does not match its Avro contract (or a store's record
│                         does not match its contract)
├── ModelError            a model cannot be used (e.g. feature-set mismatch)
└── RequestError          what a caller asked is refused (a cursor, a query, a credential,
                          a scope); asking again the same way fails again

Package errors hang under these (``indicators/errors.py``, ``training/errors.py``,
``serving/errors.py``, ...). An error that callers also catch as ``ValueError`` keeps
``ValueError`` as a second base. Only private control-flow signals stay outside the root;
``tests/unit/tickcast/test_error_hierarchy.py`` checks every public one.
"""

from __future__ import annotations

from tickcast.redaction import redact


class TickcastError(Exception):
    """Base of every error tickcast raises on purpose."""


class ConfigError(TickcastError):
    """Configuration is invalid; the message says which variable and why."""


class DependencyError(TickcastError):
    """A component is down or misconfigured; ``hint`` says how to fix it.

    The message is redacted (:func:`tickcast.redaction.redact`): it often quotes a DSN.
    """

    def __init__(self, component: str, message: str, hint: str = "") -> None:
        super().__init__(redact(f"{component}: {message}" + (f" ({hint})" if hint else "")))
        self.component = component
        self.hint = hint


class SchemaError(TickcastError):
    """A payload could not be decoded or does not fit its schema."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModelError(TickcastError):
    """A model cannot be loaded or used as asked."""


class RequestError(TickcastError):
    """A caller's request (an argument, a cursor, a query, a token) is refused as asked.

    Retrying the same request fails the same way. Where one reaches the HTTP API or the
    ClickHouse read endpoint, the code that catches it answers a 4xx; it is never an outage.
    """
