"""Tracking test helpers: a program with two approved partners, staff logins, links and clicks."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from partners.affiliates.models import Partner
from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity import service as identity
from partners.identity.roles import Role
from partners.programs.models import Program, Tier
from partners.rollups import service as rollups
from partners.rollups.models import LinkDay, PartnerDay
from partners.settings import Settings
from partners.tracking.models import Click, Customer, TrackingLink
from partners.tracking.recorder import ClickEvent, ClickRecorder
from tests.factories import create_partner, create_program, partner_headers

VISITOR_IP = "203.0.113.77"
BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@dataclass
class World:
    program: Program
    tiers: dict[str, Tier]
    alice: Partner
    bob: Partner
    alice_headers: dict[str, str]
    bob_headers: dict[str, str]


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    async with database.write() as session:
        program, tiers = await create_program(session, settings, cookie_window_days=30)
        alice = await create_partner(session, program, tiers["starter"], email="alice@example.com")
        bob = await create_partner(session, program, tiers["starter"], email="bob@example.com")
        alice_headers = await partner_headers(session, settings, alice)
        bob_headers = await partner_headers(session, settings, bob)
    return World(program, tiers, alice, bob, alice_headers, bob_headers)


@pytest.fixture
async def visitor(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at VISITOR_IP that keeps cookies and does not follow redirects."""
    transport = httpx.ASGITransport(app=app, client=(VISITOR_IP, 51000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"User-Agent": BROWSER_UA}
    ) as http:
        yield http


def recorder_of(app: Any) -> ClickRecorder:
    recorder: ClickRecorder = app.state.click_recorder
    return recorder


async def staff_headers(database: Database, settings: Settings, role: Role) -> dict[str, str]:
    async with database.write() as session:
        user = await identity.create_staff_user(
            session,
            email=f"{role.value}@example.com",
            name=role.value,
            password=secrets.token_hex(12),
            role=role,
        )
        token, _csrf = await identity.start_session(
            session, settings, subject_kind="staff", subject_id=user.id, ip="127.0.0.1", user_agent="tests"
        )
    return {"Authorization": f"Bearer {token}"}


async def add_link(database: Database, partner: Partner, code: str | None = None, **fields: Any) -> TrackingLink:
    async with database.write() as session:
        link = TrackingLink(
            partner_id=partner.id,
            code=code or secrets.token_hex(4),
            destination_url=fields.pop("destination_url", "https://namaskah.app/"),
            sub_ids={},
            active=fields.pop("active", True),
            **fields,
        )
        session.add(link)
    return link


async def add_click(
    database: Database,
    link: TrackingLink,
    *,
    at: datetime | None = None,
    is_bot: bool = False,
    previous: str | None = None,
) -> str:
    click_id = secrets.token_hex(16)
    async with database.write() as session:
        session.add(
            Click(
                click_id=click_id,
                link_id=link.id,
                partner_id=link.partner_id,
                occurred_at=at or utcnow(),
                ip_hash="0" * 64,
                user_agent=BROWSER_UA,
                referrer="",
                country=None,
                is_bot=is_bot,
                previous_click_id=previous,
            )
        )
    return click_id


async def stored_clicks(database: Database) -> list[Click]:
    async with database.read() as session:
        return list(await session.scalars(select(Click).order_by(Click.id)))


async def stored_customer(database: Database, external_id: str) -> Customer:
    async with database.read() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    assert customer is not None
    return customer


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for a background effect. The bound (10 s) only stops a broken run; it asserts no speed."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never became true")


def click_event(link_id: int, partner_id: int, number: int, user_agent: str = BROWSER_UA) -> ClickEvent:
    """A click as the redirect hands it to the recorder; `number` makes its click id."""
    return ClickEvent(
        click_id=f"{number:032x}",
        link_id=link_id,
        partner_id=partner_id,
        occurred_at=utcnow(),
        ip_hash="a" * 64,
        user_agent=user_agent,
        referrer="",
        country=None,
        previous_click_id=None,
    )


async def assert_rollups_match_a_recount(database: Database) -> None:
    async with database.read() as session:
        compared = await rollups.stored_and_recounted(session)
    for table, (stored, recounted) in compared.items():
        assert stored == recounted, (
            f"{table}: stored - recount {stored - recounted}, recount - stored {recounted - stored}"
        )


async def clicks_counted(database: Database) -> tuple[int, int]:
    """The clicks the partner-day and link-day rollups count."""
    async with database.read() as session:
        partner_days = await session.scalar(select(func.coalesce(func.sum(PartnerDay.clicks), 0)))
        link_days = await session.scalar(select(func.coalesce(func.sum(LinkDay.clicks), 0)))
    return int(partner_days or 0), int(link_days or 0)
