"""A component's health as a small value, shared by ``doctor``, ``status`` and ``/readyz``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    """What a check found: ``ok``, what it saw, and how to fix it when not ok."""

    component: str
    ok: bool
    detail: str
    hint: str = ""
    seconds: float = 0.0
