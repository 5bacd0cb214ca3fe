"""Identity test helpers: staff users made through the service, logins through the API, a TOTP clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends

from partners.app import create_app
from partners.db.session import Database
from partners.identity import service, totp
from partners.identity.deps import ApiKeyPrincipal, StaffPrincipal, require_api_key, require_staff
from partners.identity.roles import Role
from partners.settings import Settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def app(settings: Settings, database: Database) -> Any:
    """The real app plus a few routes guarded by the dependencies other domains will use."""
    application = create_app(settings, database)

    @application.get("/_test/ledger")
    async def read_ledger(
        staff: Annotated[StaffPrincipal, Depends(require_staff("ledger:read"))],
    ) -> dict[str, Any]:
        return {"user_id": staff.user_id, "role": staff.role.value}

    @application.post("/_test/partners")
    async def write_partner(
        staff: Annotated[StaffPrincipal, Depends(require_staff("partners:write"))],
    ) -> dict[str, Any]:
        return {"user_id": staff.user_id}

    @application.post("/_test/events")
    async def host_event(
        key: Annotated[ApiKeyPrincipal, Depends(require_api_key("events:write"))],
    ) -> dict[str, Any]:
        return {"key_id": key.key_id, "scopes": sorted(key.scopes)}

    @application.post("/_test/events-own-writes")  # the purchase routes' way: no unit of work opened for them
    async def host_event_own_writes(
        key: Annotated[ApiKeyPrincipal, Depends(require_api_key("events:write", own_writes=True))],
    ) -> dict[str, Any]:
        return {"key_id": key.key_id, "scopes": sorted(key.scopes)}

    @application.get("/_test/partners")
    async def host_partners(
        key: Annotated[ApiKeyPrincipal, Depends(require_api_key("partners:read"))],
    ) -> dict[str, Any]:
        return {"key_id": key.key_id}

    return application


async def make_staff(database: Database, email: str, role: Role, password: str = PASSWORD) -> int:
    async with database.write() as session:
        user = await service.create_staff_user(
            session, email=email, name=email.split("@")[0].title(), password=password, role=role
        )
        return user.id


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD, otp: str | None = None) -> Any:
    body = {"email": email, "password": password} | ({"otp": otp} if otp else {})
    return await client.post("/auth/login", json=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login_bearer(client: httpx.AsyncClient, email: str, otp: str | None = None) -> dict[str, str]:
    """Log in and return bearer headers; drops the session cookie so only the token authenticates."""
    response = await login(client, email, otp=otp)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return bearer(response.json()["token"])


@pytest.fixture
async def owner_headers(database: Database, client: httpx.AsyncClient) -> dict[str, str]:
    await make_staff(database, "owner@example.com", Role.OWNER)
    return await login_bearer(client, "owner@example.com")


@pytest.fixture
async def admin_headers(database: Database, client: httpx.AsyncClient) -> dict[str, str]:
    await make_staff(database, "admin@example.com", Role.ADMIN)
    return await login_bearer(client, "admin@example.com")


@pytest.fixture
async def viewer_headers(database: Database, client: httpx.AsyncClient) -> dict[str, str]:
    await make_staff(database, "viewer@example.com", Role.VIEWER)
    return await login_bearer(client, "viewer@example.com")


@dataclass
class FakeClock:
    now: float

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The TOTP verifier's clock, fixed at a step boundary so codes never straddle two steps."""
    fake = FakeClock(now=1_800_000_000.0)
    monkeypatch.setattr(totp, "current_time", lambda: fake.now)
    return fake
