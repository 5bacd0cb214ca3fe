"""Affiliates test helpers: a program, staff logins, registration through the API, the mail outbox."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from partners.db.session import Database
from partners.identity import service as identity
from partners.identity.roles import Role
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.factories import create_program
from tests.mail.support import messages_to, plain_text, run_jobs, use_mail_settings

PASSWORD = "correct horse battery staple"
STAFF_PASSWORD = "staff horse battery staple"


@pytest.fixture(autouse=True)
def _mail_to_files(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    use_mail_settings(monkeypatch, settings)


@pytest.fixture
async def program(database: Database, settings: Settings) -> tuple[Program, dict[str, Tier]]:
    """The default program ("main") with the default tiers."""
    async with database.write() as session:
        return await create_program(session, settings)


async def staff_headers(database: Database, client: httpx.AsyncClient, role: Role) -> dict[str, str]:
    email = f"{role.value}@example.com"
    async with database.write() as session:
        await identity.create_staff_user(session, email=email, name=role.value, password=STAFF_PASSWORD, role=role)
    response = await client.post("/auth/login", json={"email": email, "password": STAFF_PASSWORD})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
async def admin_headers(database: Database, client: httpx.AsyncClient) -> dict[str, str]:
    return await staff_headers(database, client, Role.ADMIN)


@pytest.fixture
async def viewer_headers(database: Database, client: httpx.AsyncClient) -> dict[str, str]:
    return await staff_headers(database, client, Role.VIEWER)


def application(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Asha Rao",
        "email": "asha@example.com",
        "password": PASSWORD,
        "website": "https://asha.example.com",
        "audience": "Developers who need SMS verification",
        "country": "in",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


async def register(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/affiliate/register", json=application(**changes))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def field_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return str(response.json()["errors"][0]["field"])


async def emailed_token(database: Database, settings: Settings, address: str, path: str) -> str:
    """Run the outbox and take the token from the newest email to `address` linking to `path`."""
    await run_jobs(database)
    tokens = [
        match.group(1)
        for message in messages_to(settings, address)
        if (match := re.search(rf"{re.escape(settings.base_url + path)}\?token=([A-Za-z0-9_-]+)", plain_text(message)))
    ]
    assert tokens, f"no email to {address} with a {path} link"
    return tokens[-1]


async def login_partner(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/affiliate/login", json={"email": email, "password": password})


async def partner_bearer(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await login_partner(client, email, password)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}
