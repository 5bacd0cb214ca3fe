"""Who is calling: what `require_staff` and `require_api_key` hand to an endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from partners.identity.roles import Role, has_permission


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    user_id: int
    email: str
    name: str
    role: Role
    session_id: int

    def can(self, permission: str) -> bool:
        return has_permission(self.role, permission)


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    key_id: int
    name: str
    scopes: frozenset[str]
