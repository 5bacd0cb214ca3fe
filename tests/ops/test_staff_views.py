"""The staff read-outs of the ledger and the outbox, and who may use them."""

from __future__ import annotations

import httpx

from partners.db.session import Database
from partners.identity.roles import Role
from partners.jobs.models import Job
from partners.jobs.service import enqueue
from partners.ledger import service as ledger
from partners.settings import Settings
from tests.factories import staff_headers


async def test_staff_read_an_owners_balances_and_an_accounts_entries(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        headers = await staff_headers(session, settings, Role.VIEWER)
        platform = await ledger.open_account(
            session, owner="platform", kind="commission_expense", currency="USD", may_go_negative=True
        )
        earnings = await ledger.open_account(session, owner="partner:7", kind="earnings_available", currency="USD")
        await ledger.transfer(
            session, idempotency_key="t1", kind="commission", source=platform, destination=earnings, amount=1234
        )
        await ledger.reserve(
            session, idempotency_key="h1", kind="payout", source=earnings, destination=platform, amount=1000
        )

    balances = await client.get("/admin/ledger/balances", params={"owner": "partner:7"}, headers=headers)
    assert balances.status_code == 200
    [row] = balances.json()
    assert (row["posted"], row["pending_debits"], row["available"]) == (1234, 1000, 234)

    entries = await client.get(f"/admin/ledger/accounts/{earnings.id}/entries", headers=headers)
    assert [(e["amount"], e["kind"]) for e in entries.json()] == [(1234, "commission")]
    missing = await client.get("/admin/ledger/accounts/999999/entries", headers=headers)
    assert missing.status_code == 404


async def test_ledger_views_need_a_staff_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/ledger/balances", params={"owner": "platform"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_admin_replays_a_dead_job_but_a_viewer_cannot(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        viewer = await staff_headers(session, settings, Role.VIEWER)
        admin = await staff_headers(session, settings, Role.ADMIN)
        await enqueue(session, "mail.send", {"to": "x@example.com"}, unique_key="dead-one")
    async with database.write() as session:
        job = (await session.execute(Job.__table__.select())).first()
        assert job is not None
        await session.execute(Job.__table__.update().values(status="dead", attempts=8))

    listed = await client.get("/admin/jobs", params={"status": "dead"}, headers=viewer)
    assert [j["unique_key"] for j in listed.json()] == ["dead-one"]
    job_id = listed.json()[0]["id"]

    refused = await client.post(f"/admin/jobs/{job_id}/replay", headers=viewer)
    assert refused.status_code == 403
    replayed = await client.post(f"/admin/jobs/{job_id}/replay", headers=admin)
    assert replayed.status_code == 200
    assert (replayed.json()["status"], replayed.json()["attempts"]) == ("queued", 0)
    again = await client.post(f"/admin/jobs/{job_id}/replay", headers=admin)
    assert again.status_code == 409
