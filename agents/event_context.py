"""Faust table access from a micro-batch: the one place that touches Faust internals.

Faust tables find a key's partition (and its RocksDB instance) through the *current
event* context variable, which only holds inside per-event stream iteration: writing from
``stream.take()`` fails (PERFORMANCE.md). Our state writes happen once per checkpoint for a
whole batch, so we set the context to an event of the right partition around each access.
faust-streaming exposes no public API for this; the variable is ``faust.streams._current_event``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust import streams
from faust.types import EventT


@contextmanager
def in_event(event: EventT) -> Iterator[None]:
    """Run the body as if ``event`` were being processed (its partition's table shard)."""
    token = streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        streams._current_event.reset(token)
