"""structlog set-up, once, at the entry point; correlation ids travel in a context variable,
trace and span ids come from the current OpenTelemetry span (tickcast.tracing)."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog

from tickcast.redaction import MASK, is_secret_key, redact, redact_value
from tickcast.tracing import add_trace_ids


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no secret reaches a log line, whatever a caller passes (a secret
    key, nested values, a DSN or token inside a message or a formatted traceback)."""
    for key in list(event):
        event[key] = MASK if is_secret_key(key) else redact_value(event[key])
    return event


class RedactingFilter(logging.Filter):
    """The same for standard-library records (uvicorn, clickhouse-connect, kafka clients)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted rendering; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logger's problem, not ours
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Configure structlog for a process (call once from a CLI command or service)."""
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,  # trace_id/span_id of the current span, when tracing is on
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,  # after format_exc_info: tracebacks are redacted too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def new_correlation_id() -> str:
    """A fresh correlation id (uuid4 hex)."""
    return uuid.uuid4().hex


def bind_correlation_id(correlation_id: str | None = None) -> str:
    """Bind a correlation id to the current context's log lines and return it."""
    cid = correlation_id or new_correlation_id()
    structlog.contextvars.bind_contextvars(correlation_id=cid)
    return cid
