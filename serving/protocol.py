"""uvicorn's httptools protocol with the request time-outs uvicorn lacks (slowloris guard).

uvicorn bounds the idle time between the requests of a keep-alive connection
(``timeout_keep_alive``) and the number of connections (``limit_concurrency``), but not the
time a client takes to send a request: a connection that trickles its headers one byte at a
time (slowloris), or sends nothing at all, holds a connection slot and a file descriptor for
as long as it likes. :class:`GuardedHttpToolsProtocol` adds, per connection:

* a header time-out, from the connection's start (or a request's first byte on a keep-alive
  connection) to the end of the request's headers (``TICKCAST_API_HEADER_TIMEOUT_S``): the
  answer is ``408`` and the connection is closed;
* a body time-out, from the end of the headers to the end of the body
  (``TICKCAST_API_BODY_TIMEOUT_S``): the connection is closed (the application sees the
  client disconnect);
* a cap on the request line and headers (``TICKCAST_API_MAX_HEADER_BYTES``; httptools has
  none): ``431`` and the connection is closed.

``tickcast serve`` hands uvicorn this class (:func:`serving.cli.uvicorn_options`); each
worker process reads the limits from its settings once. Behind a reverse proxy that buffers
whole requests (nginx, Envoy) the proxy's time-outs act first; this guard still protects a
directly exposed port.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tickcast.config import Settings

__all__ = ["GuardedHttpToolsProtocol", "RequestLimits"]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """How long a request may take to arrive, and how large its headers may be."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 32_768

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        """The limits ``TICKCAST_API_*`` configure."""
        return cls(
            header_timeout_s=settings.api_header_timeout_s,
            body_timeout_s=settings.api_body_timeout_s,
            max_header_bytes=settings.api_max_header_bytes,
        )


@functools.cache
def process_limits() -> RequestLimits:
    """The limits of this process's settings (read once, at the first connection)."""
    from tickcast.config import load_settings

    return RequestLimits.from_settings(load_settings())


def _answer(status: int, reason: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, reason, len(reason), reason)
    )


class _HeadersTooLarge(Exception):
    """Raised in a parser callback: httptools stops with an ``HttpParserCallbackError`` (an
    ``HttpParserError``), which uvicorn's ``data_received`` answers with
    :meth:`GuardedHttpToolsProtocol.send_400_response`. A private signal of this module, so
    outside the ``TickcastError`` root."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`~uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` with header and
    body time-outs and a header size cap (see the module docstring).

    ``limits`` (a class attribute) overrides the settings, for a subclass in tests.
    """

    limits: RequestLimits | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits or process_limits()
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0
        self._headers_too_large = False

    # timers
    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        self.logger.warning("Request headers not received in time: closing the connection.")
        if self.cycle is None or self.cycle.response_complete:  # not inside another answer
            self.transport.write(_answer(408, b"Request Timeout"))
        self.transport.close()

    def _body_timeout(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.logger.warning("Request body not received in time: closing the connection.")
            self.transport.close()

    # connection and parser callbacks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header clock of the first request."""
        super().connection_made(transport)
        self._in_headers = True
        self._arm(self._limits.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request's first byte: on a keep-alive connection, start its header clock."""
        super().on_message_begin()
        self._header_bytes = 0
        if not self._in_headers:
            self._in_headers = True
            self._arm(self._limits.header_timeout_s, self._header_timeout)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            self._headers_too_large = True
            raise _HeadersTooLarge

    def on_url(self, url: bytes) -> None:
        """Count the request target against the header cap."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header against the cap."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Headers in: stop their clock, start the body's."""
        self._in_headers = False
        self._arm(self._limits.body_timeout_s, self._body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request arrived in time."""
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        """The connection leaves this protocol: stop the clock."""
        self._disarm()
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused: 431 when headers were too large."""
        if not self._headers_too_large:
            super().send_400_response(msg)
            return
        self.logger.warning("Request headers larger than %d bytes.", self._limits.max_header_bytes)
        self.transport.write(_answer(431, b"Request Header Fields Too Large"))
        self.transport.close()
