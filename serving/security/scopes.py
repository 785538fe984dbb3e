"""Roles and the scopes they grant; every endpoint names the scopes it needs.

| role   | scopes                                                            |
| ------ | ----------------------------------------------------------------- |
| viewer | predictions:read features:read                                    |
| trader | viewer + history:read                                             |
| quant  | trader + models:read                                              |
| admin  | quant + models:write (promote/rollback) + keys:admin + users:admin |

>>> sorted(scopes_for("trader"))
['features:read', 'history:read', 'predictions:read']
>>> grant("viewer", "features:read")
frozenset({'features:read'})
"""

from __future__ import annotations

from typing import Literal, get_args

from tickcast.errors import RequestError

Role = Literal["viewer", "trader", "quant", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

PREDICTIONS_READ = "predictions:read"
FEATURES_READ = "features:read"
HISTORY_READ = "history:read"
MODELS_READ = "models:read"
MODELS_WRITE = "models:write"
KEYS_ADMIN = "keys:admin"
USERS_ADMIN = "users:admin"

#: Every scope with the description the OpenAPI document shows.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    PREDICTIONS_READ: "Read latest predictions.",
    FEATURES_READ: "Read latest features.",
    HISTORY_READ: "Read prediction and feature history.",
    MODELS_READ: "Read models, versions and A/B state.",
    MODELS_WRITE: "Promote and roll back models.",
    KEYS_ADMIN: "Create, list and revoke API keys.",
    USERS_ADMIN: "Manage users.",
}

_VIEWER = frozenset({PREDICTIONS_READ, FEATURES_READ})
_TRADER = _VIEWER | {HISTORY_READ}
_QUANT = _TRADER | {MODELS_READ}
_ADMIN = _QUANT | {MODELS_WRITE, KEYS_ADMIN, USERS_ADMIN}

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    "viewer": _VIEWER,
    "trader": _TRADER,
    "quant": _QUANT,
    "admin": _ADMIN,
}


class ScopeError(RequestError, ValueError):
    """Requested scopes are unknown or beyond what the role grants."""


def scopes_for(role: str) -> frozenset[str]:
    """The scopes a role grants (none for an unknown role)."""
    return ROLE_SCOPES.get(role, frozenset())  # type: ignore[call-overload]


def grant(role: str, requested: str | None) -> frozenset[str]:
    """Scopes to grant for an OAuth ``scope`` parameter: all of the role's when empty.

    Raises :class:`ScopeError` when a requested scope is not the role's to grant.
    """
    allowed = scopes_for(role)
    wanted = frozenset((requested or "").split())
    if not wanted:
        return allowed
    extra = wanted - allowed
    if extra:
        raise ScopeError(f"scope not granted to role {role}: {' '.join(sorted(extra))}")
    return wanted
