from __future__ import annotations

import asyncio
import re

import httpx
import sqlalchemy as sa

from partners.affiliates.models import AgreementAcceptance, AgreementVersion, Partner, PartnerToken
from partners.db.session import Database
from partners.jobs.models import Job
from partners.programs.models import Program, Tier, TierChange
from partners.settings import Settings
from tests.affiliates.conftest import PASSWORD, application, field_of, register
from tests.factories import create_partner, create_program

Programme = tuple[Program, dict[str, Tier]]


async def test_registration_creates_a_pending_partner_on_the_lowest_tier(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    body = await register(client, email="Asha@Example.com ")
    assert body["status"] == "pending"
    assert body["email"] == "asha@example.com"
    assert body["country"] == "IN"
    assert body["program_id"] == program[0].id
    assert body["tier"]["key"] == "starter"
    assert body["email_verified"] is False
    assert body["parent_id"] is None
    assert re.fullmatch(r"[a-z0-9]{8}", body["referral_code"])
    assert body["referral_link"] == f"{settings.base_url}/r/{body['referral_code']}"
    async with database.read() as session:
        partner = await session.get(Partner, body["id"])
        assert partner is not None and partner.password_hash is not None
        assert partner.password_hash.startswith("$argon2id$") and PASSWORD not in partner.password_hash
        token = (await session.scalars(sa.select(PartnerToken))).one()
        jobs = list(await session.scalars(sa.select(Job)))
        history = (await session.scalars(sa.select(TierChange))).one()
    assert token.purpose == "verify_email" and len(token.token_hash) == 64
    assert [(job.name, job.payload["to"]) for job in jobs] == [("mail.send", "asha@example.com")]
    assert (history.partner_id, history.to_tier_id, history.reason) == (
        body["id"],
        program[1]["starter"].id,
        "initial",
    )


async def test_the_lowest_rank_tier_is_the_entry_tier_whatever_its_key(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        await session.execute(sa.update(Tier).where(Tier.key == "starter").values(rank=9))
    body = await register(client)
    assert body["tier"]["key"] == "pro"


async def test_registration_without_a_program_uses_the_default_program(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = await register(client)
    async with database.read() as session:
        program = await session.get(Program, body["program_id"])
    assert program is not None and program.is_default
    assert body["tier"]["key"] == "starter"


async def test_registration_into_a_named_program(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        other, _tiers = await create_program(session, settings, slug="resellers", is_default=False)
    body = await register(client, program="resellers")
    assert body["program_id"] == other.id
    unknown = await client.post("/affiliate/register", json=application(email="b@example.com", program="nope"))
    assert unknown.status_code == 422
    assert field_of(unknown) == "program"


async def test_duplicate_email_is_a_409_naming_email(client: httpx.AsyncClient, program: Programme) -> None:
    await register(client)
    again = await client.post("/affiliate/register", json=application(email="ASHA@example.com", name="Other"))
    assert again.status_code == 409
    assert field_of(again) == "email"


async def test_bad_fields_are_422_naming_the_field(client: httpx.AsyncClient, program: Programme) -> None:
    cases = {
        "country": application(country="XX"),
        "email": application(email="not-an-email"),
        "password": application(password="short"),
    }
    for field, body in cases.items():
        response = await client.post("/affiliate/register", json=body)
        assert response.status_code == 422, response.text
        assert field_of(response) == field
    wordy_country = await client.post("/affiliate/register", json=application(country="India"))
    assert field_of(wordy_country) == "country"
    missing = await client.post("/affiliate/register", json=application(country=None))
    assert missing.status_code == 422 and field_of(missing) == "country"


async def test_the_recruiter_becomes_the_parent(
    client: httpx.AsyncClient, database: Database, program: Programme
) -> None:
    async with database.write() as session:
        recruiter = await create_partner(session, program[0], program[1]["pro"], referral_code="recruit1")
    body = await register(client, recruiter_code="RECRUIT1")
    assert body["parent_id"] == recruiter.id


async def test_a_recruiter_who_may_not_recruit_is_refused(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    main, tiers = program
    async with database.write() as session:
        await session.execute(sa.update(Tier).where(Tier.id == tiers["starter"].id).values(can_recruit=False))
        await create_partner(session, main, tiers["starter"], referral_code="norecruit")
        await create_partner(session, main, tiers["pro"], referral_code="pendingr", status="pending")
        other, other_tiers = await create_program(session, settings, slug="other", is_default=False)
        await create_partner(session, other, other_tiers["pro"], referral_code="otherprog")
    for code in ("norecruit", "pendingr", "otherprog", "unknown1"):
        response = await client.post("/affiliate/register", json=application(recruiter_code=code))
        assert response.status_code == 422, (code, response.text)
        assert field_of(response) == "recruiter_code"
    async with database.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 3


async def test_a_program_with_an_agreement_requires_accepting_the_current_version(
    client: httpx.AsyncClient, database: Database, program: Programme
) -> None:
    async with database.write() as session:
        for version in (1, 2):
            session.add(AgreementVersion(program_id=program[0].id, version=version, title=f"v{version}", body="..."))
    for accept in (None, 1):
        refused = await client.post("/affiliate/register", json=application(accept_agreement=accept))
        assert refused.status_code == 422
        assert field_of(refused) == "accept_agreement"
    response = await client.post(
        "/affiliate/register", json=application(accept_agreement=2), headers={"User-Agent": "Browser/1.0"}
    )
    assert response.status_code == 201
    async with database.read() as session:
        acceptance = (await session.scalars(sa.select(AgreementAcceptance))).one()
        version = await session.get(AgreementVersion, acceptance.agreement_version_id)
    assert acceptance.partner_id == response.json()["id"]
    assert version is not None and version.version == 2
    assert (acceptance.ip, acceptance.user_agent) == ("127.0.0.1", "Browser/1.0")
    assert acceptance.accepted_at is not None


async def test_two_simultaneous_registrations_of_one_email_give_one_partner(
    client: httpx.AsyncClient, database: Database, program: Programme
) -> None:
    first, second = await asyncio.gather(
        client.post("/affiliate/register", json=application(name="One")),
        client.post("/affiliate/register", json=application(name="Two")),
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert field_of(loser) == "email"
    async with database.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 1
