"""The API answers every forged or missing access token with a 401 and its challenge."""

from __future__ import annotations

import pytest

from tests.support.forged_tokens import codec, forged_tokens
from tests.support.serving_app import Api, bearer

pytestmark = pytest.mark.integration


async def test_forged_tokens_get_401_with_challenge(api: Api) -> None:
    secret = api.settings.jwt_secret.get_secret_value()
    for case, token in forged_tokens(secret).items():
        response = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token))
        assert response.status_code == 401, case
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="tickcast", error="invalid_token"'), case
        assert response.json()["error"] == "invalid_token"
    good, _ = codec(secret).issue(
        sub="user:eve", role="viewer", scopes=("predictions:read",), sid="s"
    )
    ok = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(good))
    assert ok.status_code == 404  # authenticated: the symbol is simply unknown


async def test_missing_and_malformed_authorization_headers(api: Api) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        response = await api.client.get("/v1/predictions/AAPL/latest", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
