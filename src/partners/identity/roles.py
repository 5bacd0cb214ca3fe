"""Staff roles, their permissions, and host API key scopes: the one place that says who may do what."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    FINANCE = "finance"
    SUPPORT = "support"
    VIEWER = "viewer"


READ_PERMISSIONS = frozenset(
    {
        "partners:read",
        "programs:read",
        "commissions:read",
        "payouts:read",
        "disputes:read",
        "ledger:read",
        "reports:read",
        "jobs:read",
    }
)
WRITE_PERMISSIONS = frozenset(
    {
        "staff:manage",
        "apikeys:manage",
        "partners:write",
        "programs:write",
        "commissions:write",
        "payouts:write",
        "payouts:approve",
        "disputes:write",
        "settings:write",
        "jobs:manage",
    }
)
# Creating, changing or deactivating an owner. Only owners hold it.
MANAGE_OWNERS = "staff:owners"

PERMISSIONS = READ_PERMISSIONS | WRITE_PERMISSIONS | {MANAGE_OWNERS}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.OWNER: PERMISSIONS,
    Role.ADMIN: PERMISSIONS - {MANAGE_OWNERS},
    Role.FINANCE: READ_PERMISSIONS | {"commissions:write", "payouts:write", "payouts:approve"},
    Role.SUPPORT: READ_PERMISSIONS | {"partners:write", "disputes:write"},
    Role.VIEWER: READ_PERMISSIONS,
}

API_KEY_SCOPES = frozenset({"events:write", "partners:read", "partners:write", "wallet:callback"})


def has_permission(role: Role, permission: str) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def ensure_known_permission(permission: str) -> None:
    """Fail at import time on a typo such as require_staff("partner:read")."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown staff permission {permission!r}")


def ensure_known_scope(scope: str) -> None:
    if scope not in API_KEY_SCOPES:
        raise ValueError(f"unknown API key scope {scope!r}")
