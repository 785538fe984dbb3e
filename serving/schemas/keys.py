"""Schemas of the API-key resource."""

from __future__ import annotations

from pydantic import BaseModel, Field

from serving.security.scopes import Role


class KeyBase(BaseModel):
    """What a key is for."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.:\-]+$")
    role: Role


class KeyCreate(KeyBase):
    """Create a key."""


class KeyPublic(KeyBase):
    """A key as listed: never its secret."""

    key_id: str
    created_at: float = Field(description="Epoch seconds.")
    created_by: str
    revoked_at: float | None = None


class KeyCreatedPublic(KeyPublic):
    """A new key: ``api_key`` is shown this once and cannot be recovered."""

    api_key: str


class KeysPublic(BaseModel):
    """Every key."""

    keys: list[KeyPublic]
