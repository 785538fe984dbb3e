"""orjson-rendered JSON responses.

FastAPI's own ``ORJSONResponse`` is deprecated (routes with a response model are serialised by
pydantic's Rust core, which is what our routes use); this class serves the hand-built answers:
errors, health reports and OAuth token responses.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """A JSON response rendered with orjson (UTF-8, no whitespace)."""

    def render(self, content: Any) -> bytes:
        """Serialise ``content`` (dicts, lists, dataclasses, datetimes) to JSON bytes."""
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
