"""Typed errors of tickcast.

TickcastError
├── ConfigError           bad or missing configuration (one line for a person)
├── DependencyError       a component (Kafka, Redis, ClickHouse, MLflow, Java) is unusable
├── SchemaError           a record does not match its Avro contract
└── ModelError            a model cannot be used (e.g. feature-set mismatch)
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
