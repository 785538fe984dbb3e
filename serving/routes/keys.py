"""API keys for machine clients (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from serving.deps import AuthDep, KeysAdmin
from serving.errors import NotFound
from serving.schemas.common import PROTECTED, error_responses
from serving.schemas.keys import KeyCreate, KeyCreatedPublic, KeyPublic, KeysPublic
from serving.security.apikeys import ApiKey

router = APIRouter(prefix="/keys", tags=["keys"])

KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="12 hex digits.")]


def _public(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        key_id=key.key_id,
        name=key.name,
        role=key.role,  # type: ignore[arg-type]  # stored roles are validated at creation
        created_at=key.created_at,
        created_by=key.created_by,
        revoked_at=key.revoked_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreatedPublic,
    responses=error_responses(*PROTECTED),
)
async def create_key(body: KeyCreate, admin: KeysAdmin, auth: AuthDep) -> KeyCreatedPublic:
    """Create an API key; the secret ``api_key`` is in this answer only."""
    key, secret = await auth.create_key(body.name, body.role, actor=admin.sub)
    return KeyCreatedPublic(**_public(key).model_dump(), api_key=secret)


@router.get("", response_model=KeysPublic, responses=error_responses(*PROTECTED))
async def list_keys(admin: KeysAdmin, auth: AuthDep) -> KeysPublic:
    """Every API key, revoked ones included, without secrets."""
    return KeysPublic(keys=[_public(key) for key in await auth.list_keys(actor=admin.sub)])


@router.delete("/{key_id}", response_model=KeyPublic, responses=error_responses(*PROTECTED, 404))
async def revoke_key(key_id: KeyIdPath, admin: KeysAdmin, auth: AuthDep) -> KeyPublic:
    """Revoke an API key and every access token obtained with it."""
    key = await auth.revoke_key(key_id, actor=admin.sub)
    if key is None:
        raise NotFound(f"no key {key_id}")
    return _public(key)
