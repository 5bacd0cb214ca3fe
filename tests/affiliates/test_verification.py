from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from partners.affiliates.models import Partner, PartnerToken
from partners.audit.service import entries_for
from partners.db.session import Database
from partners.db.types import utcnow
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.affiliates.conftest import emailed_token, field_of, register
from tests.mail.support import messages_to, plain_text, run_jobs

Programme = tuple[Program, dict[str, Tier]]


async def test_email_verification_end_to_end_through_the_emailed_link(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    body = await register(client)
    token = await emailed_token(database, settings, "asha@example.com", "/portal/verify-email")
    [message] = messages_to(settings, "asha@example.com")
    assert message["Subject"] == "Confirm your email for the Namaskah partner program"

    verified = await client.get("/affiliate/verify-email", params={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"email_verified": True, "status": "pending"}
    async with database.read() as session:
        partner = await session.get(Partner, body["id"])
    assert partner is not None and partner.email_verified_at is not None
    assert partner.status == "pending"  # the program does not auto-approve: staff decide

    reused = await client.post("/affiliate/verify-email", json={"token": token})
    assert reused.status_code == 422
    assert field_of(reused) == "token"


async def test_verification_by_post_and_bad_or_expired_tokens(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    await register(client)
    token = await emailed_token(database, settings, "asha@example.com", "/portal/verify-email")
    wrong = await client.post("/affiliate/verify-email", json={"token": "not-a-token"})
    assert wrong.status_code == 422 and field_of(wrong) == "token"
    async with database.write() as session:
        await session.execute(sa.update(PartnerToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = await client.post("/affiliate/verify-email", json={"token": token})
    assert expired.status_code == 422 and field_of(expired) == "token"


async def test_auto_approve_approves_at_verification(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        await session.execute(sa.update(Program).values(auto_approve=True, auto_approve_countries=["IN", "NP"]))
    body = await register(client)
    assert body["status"] == "pending"
    token = await emailed_token(database, settings, "asha@example.com", "/portal/verify-email")
    verified = await client.post("/affiliate/verify-email", json={"token": token})
    assert verified.json() == {"email_verified": True, "status": "approved"}
    async with database.read() as session:
        partner = await session.get(Partner, body["id"])
        audit = await entries_for(session, "partner", body["id"])
    assert partner is not None and partner.approved_at is not None
    assert [(entry.actor_kind, entry.action, entry.details["to"]) for entry in audit] == [
        ("system", "partner.approve", "approved")
    ]
    await run_jobs(database)
    subjects = [message["Subject"] for message in messages_to(settings, "asha@example.com")]
    assert "Your Namaskah partner application is approved" in subjects
    approval = messages_to(settings, "asha@example.com")[-1]
    assert body["referral_link"] in plain_text(approval)


async def test_auto_approve_only_for_the_listed_countries(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        await session.execute(sa.update(Program).values(auto_approve=True, auto_approve_countries=["NP"]))
    await register(client, country="IN")
    token = await emailed_token(database, settings, "asha@example.com", "/portal/verify-email")
    verified = await client.post("/affiliate/verify-email", json={"token": token})
    assert verified.json() == {"email_verified": True, "status": "pending"}
