from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.audit.service import entries_for
from partners.commissions.accounts import commission_expense_account, earnings_pending_account
from partners.db.session import Database
from partners.ledger.schemas import Posting
from partners.ledger.service import post_transaction
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.affiliates.conftest import emailed_token, field_of, login_partner
from tests.factories import create_partner, host_headers
from tests.mail.support import messages_to

Programme = tuple[Program, dict[str, Tier]]
PASSWORD = "chosen after enrolment"


def enrolment(**changes: Any) -> dict[str, Any]:
    return {"external_id": "user-42", "email": "kiran@example.com", "name": "Kiran"} | changes


async def host(database: Database, settings: Settings, *scopes: str) -> dict[str, str]:
    async with database.write() as session:
        return await host_headers(session, settings, *scopes)


async def test_host_enrolment_is_approved_at_once_and_idempotent(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    headers = await host(database, settings)
    first = await client.post("/partners/enrol", json=enrolment(), headers=headers)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["external_id"], body["status"], body["email_verified"]) == ("user-42", "approved", True)
    assert body["tier"]["key"] == "starter"
    assert body["referral_link"] == f"{settings.base_url}/r/{body['referral_code']}"
    assert body["balances"] == []

    replay = await client.post("/partners/enrol", json=enrolment(email="KIRAN@example.com"), headers=headers)
    assert (replay.status_code, replay.json()) == (201, body)
    for changed in (enrolment(email="other@example.com"), enrolment(name="Someone else")):
        conflict = await client.post("/partners/enrol", json=changed, headers=headers)
        assert conflict.status_code == 409
        assert field_of(conflict) == "external_id"
    async with database.read() as session:
        partner = (await session.scalars(sa.select(Partner))).one()
        [audit] = await entries_for(session, "partner", partner.id)
    assert partner.password_hash is None
    assert (audit.actor_kind, audit.action) == ("host", "partner.enrol")


async def test_an_enrolled_partner_sets_a_password_from_the_email_and_logs_in(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    await client.post("/partners/enrol", json=enrolment(), headers=await host(database, settings))
    assert (await login_partner(client, "kiran@example.com", "no password yet!")).status_code == 401
    token = await emailed_token(database, settings, "kiran@example.com", "/portal/reset-password")
    [message] = messages_to(settings, "kiran@example.com")
    assert message["Subject"] == "Your Namaskah partner account is ready"
    confirmed = await client.post("/affiliate/password-reset/confirm", json={"token": token, "password": PASSWORD})
    assert confirmed.status_code == 204
    assert (await login_partner(client, "kiran@example.com", PASSWORD)).status_code == 200


async def test_a_program_can_keep_host_enrolments_pending(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        await session.execute(sa.update(Program).values(host_enrol_auto_approve=False))
    response = await client.post("/partners/enrol", json=enrolment(), headers=await host(database, settings))
    assert response.json()["status"] == "pending"


async def test_enrolment_with_a_recruiter_and_its_checks(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        recruiter = await create_partner(session, program[0], program[1]["pro"], referral_code="recruit1")
        await create_partner(session, program[0], program[1]["pro"], referral_code="pending1", status="pending")
    headers = await host(database, settings)
    refused = await client.post("/partners/enrol", json=enrolment(recruiter_code="pending1"), headers=headers)
    assert refused.status_code == 422 and field_of(refused) == "recruiter_code"
    enrolled = await client.post("/partners/enrol", json=enrolment(recruiter_code="recruit1"), headers=headers)
    assert enrolled.status_code == 201
    async with database.read() as session:
        partner = await session.get(Partner, enrolled.json()["id"])
    assert partner is not None and partner.parent_id == recruiter.id
    replay = await client.post("/partners/enrol", json=enrolment(recruiter_code="recruit1"), headers=headers)
    assert replay.status_code == 201
    without = await client.post("/partners/enrol", json=enrolment(), headers=headers)
    assert without.status_code == 409


async def test_enrolment_with_an_email_already_used_is_409(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        await create_partner(session, program[0], program[1]["starter"], email="kiran@example.com")
    response = await client.post("/partners/enrol", json=enrolment(), headers=await host(database, settings))
    assert response.status_code == 409
    assert field_of(response) == "email"


async def test_by_external_id_shows_status_link_tier_and_balances(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    headers = await host(database, settings)
    enrolled = (await client.post("/partners/enrol", json=enrolment(), headers=headers)).json()
    async with database.write() as session:
        earnings = await earnings_pending_account(session, enrolled["id"], "USD")
        expense = await commission_expense_account(session, "USD")
        await post_transaction(
            session,
            idempotency_key="test-commission-1",
            kind="commission",
            postings=[Posting(earnings, 1234), Posting(expense, -1234)],
        )
    response = await client.get("/partners/by-external-id/user-42", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {key: body[key] for key in ("id", "status", "referral_code", "referral_link")} == {
        key: enrolled[key] for key in ("id", "status", "referral_code", "referral_link")
    }
    assert body["tier"]["name"] == "Starter"
    assert body["balances"] == [
        {
            "kind": "earnings_pending",
            "currency": "USD",
            "posted": 1234,
            "available": 1234,
            "pending_debits": 0,
            "pending_credits": 0,
        }
    ]
    missing = await client.get("/partners/by-external-id/nobody", headers=headers)
    assert missing.status_code == 404


async def test_host_endpoints_need_the_right_scope(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    read_only = await host(database, settings, "partners:read")
    events_only = await host(database, settings, "events:write")
    assert (await client.post("/partners/enrol", json=enrolment(), headers=read_only)).status_code == 403
    assert (await client.get("/partners/by-external-id/user-42", headers=events_only)).status_code == 403
    assert (await client.post("/partners/enrol", json=enrolment())).status_code == 401
