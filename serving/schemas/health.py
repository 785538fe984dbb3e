"""Schemas of the health resource."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LivePublic(BaseModel):
    """The process is up."""

    status: str = "ok"


class CheckPublic(BaseModel):
    """One dependency's readiness."""

    ok: bool
    required: bool = Field(description="Whether the API is unready (503) without it.")
    latency_ms: float
    error: str | None = None


class ReadyPublic(BaseModel):
    """Every dependency's readiness and every circuit's state."""

    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="ready: all up; degraded: an optional dependency is down; unavailable: a "
        "required one is (503)."
    )
    checks: dict[str, CheckPublic]
    circuits: dict[str, str]
