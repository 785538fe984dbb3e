"""A component's health as a small value, shared by ``doctor``, ``status`` and ``/readyz``."""

from __future__ import annotations

from dataclasses import dataclass

from tickcast.redaction import redact


@dataclass(frozen=True)
class Health:
    """What a check found: ``ok``, what it saw, and how to fix it when not ok.

    ``detail`` and ``hint`` are redacted: checks quote DSNs, and ``/readyz`` shows them.
    """

    component: str
    ok: bool
    detail: str
    hint: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", redact(self.detail))
        object.__setattr__(self, "hint", redact(self.hint))
