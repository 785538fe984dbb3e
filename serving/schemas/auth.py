"""Schemas of the auth resource (token, refresh, revoke, me)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenRequest(BaseModel):
    """The OAuth 2.0 token request (form-encoded, RFC 6749 §4.3, §4.4, §6)."""

    model_config = ConfigDict(extra="ignore")

    grant_type: str = Field(
        max_length=64, description="password, client_credentials or refresh_token."
    )
    username: str | None = Field(None, max_length=256)
    password: str | None = Field(None, max_length=1024)
    client_id: str | None = Field(None, max_length=256)
    client_secret: str | None = Field(None, max_length=256)
    refresh_token: str | None = Field(None, max_length=512)
    scope: str | None = Field(None, max_length=1024, description="Space-separated scopes.")


class TokenPublic(BaseModel):
    """An OAuth 2.0 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    scope: str
    refresh_token: str | None = Field(None, description="Single-use; present for users.")


class RefreshRequest(BaseModel):
    """Exchange a refresh token for a new pair."""

    refresh_token: str = Field(min_length=1, max_length=512)


class RevokeRequest(BaseModel):
    """RFC 7009 revocation request (form-encoded)."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(max_length=8192)
    token_type_hint: str | None = Field(None, max_length=64)


class RevokePublic(BaseModel):
    """Revocation always succeeds, whether or not the token was known (RFC 7009 §2.2)."""

    revoked: bool = True


class PrincipalPublic(BaseModel):
    """Who the caller is, as its access token says."""

    subject: str
    role: str
    scopes: list[str]
    expires_at: int = Field(description="Epoch seconds.")
