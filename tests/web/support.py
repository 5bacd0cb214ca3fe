"""Helpers for the page tests driven through httpx (both engines): forms with their CSRF tokens, logins."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from partners.affiliates.models import Partner
from partners.db.session import Database
from partners.identity import passwords
from partners.identity import service as identity
from partners.identity.roles import Role
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.factories import create_partner, create_program

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Shop:
    program: Program
    tiers: dict[str, Tier]
    partner: Partner


def csrf_of(page: httpx.Response) -> str:
    found = TOKEN.search(page.text)
    assert found, f"no csrf_token field on {page.url}"
    return found.group(1)


async def make_shop(database: Database, settings: Settings, **partner_fields: object) -> Shop:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(
            session, program, tiers["starter"], email="asha@example.com", name="Asha Rao", **partner_fields
        )
        partner.password_hash = await passwords.hash_password(PASSWORD)
    return Shop(program, tiers, partner)


async def log_in_partner(client: httpx.AsyncClient, email: str = "asha@example.com") -> httpx.Response:
    """Log in through the portal's form; returns the page the login lands on."""
    form = await client.get("/portal/login")
    response = await client.post(
        "/portal/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form)}
    )
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


async def log_in_staff(database: Database, client: httpx.AsyncClient, role: Role) -> httpx.Response:
    email = f"{role.value}@example.com"
    async with database.write() as session:
        await identity.create_staff_user(
            session, email=email, name=f"{role.value} person", password=PASSWORD, role=role
        )
    form = await client.get("/console/login")
    response = await client.post(
        "/console/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form)}
    )
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])
