"""The partner's commission list and the staff's actions (approve, reject, adjust): audited, role-checked."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.audit.service import entries_for
from partners.commissions import service
from partners.commissions.models import Commission, CommissionAdjustment
from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity.roles import Role
from partners.jobs.models import Job
from partners.jobs.registry import load_handlers
from partners.jobs.worker import run_once, tick_schedules
from partners.settings import Settings
from tests.commissions.support import T0, balances, expense, make_customer, make_purchase
from tests.factories import create_partner, create_program, partner_headers, staff_headers


class World:
    seller: Partner
    recruiter: Partner
    stranger: Partner
    purchase_ids: list[int]


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    """A recruiter and its seller (2 purchases: 10,000 and 20,000), and an unrelated partner (1 purchase)."""
    found = World()
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        found.recruiter = await create_partner(session, program, tiers["pro"])
        found.seller = await create_partner(session, program, tiers["starter"], parent=found.recruiter)
        found.stranger = await create_partner(session, program, tiers["starter"])
        found.purchase_ids = []
        for partner, amount in ((found.seller, 10_000), (found.seller, 20_000), (found.stranger, 40_000)):
            customer = await make_customer(session, program, partner)
            purchase = await make_purchase(session, customer, amount)
            await service.create_commissions_for_purchase(session, purchase=purchase, customer=customer, now=T0)
            found.purchase_ids.append(purchase.id)
    return found


async def headers_for(database: Database, settings: Settings, partner: Partner) -> dict[str, str]:
    async with database.write() as session:
        return await partner_headers(session, settings, partner)


async def staff(database: Database, settings: Settings, role: Role) -> dict[str, str]:
    async with database.write() as session:
        return await staff_headers(session, settings, role)


async def test_a_partner_sees_only_its_own_commissions(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    seller = await headers_for(database, settings, world.seller)
    page = (await client.get("/affiliate/commissions", headers=seller)).json()
    assert page["total"] == 2
    assert {(item["partner_id"], item["amount"]) for item in page["items"]} == {
        (world.seller.id, 500),
        (world.seller.id, 1000),
    }
    stranger = await headers_for(database, settings, world.stranger)
    theirs = (await client.get("/affiliate/commissions", headers=stranger)).json()
    assert [(item["partner_id"], item["amount"]) for item in theirs["items"]] == [(world.stranger.id, 2000)]
    recruiter = await headers_for(database, settings, world.recruiter)
    level2 = (await client.get("/affiliate/commissions", params={"level": 2}, headers=recruiter)).json()
    assert sorted(item["amount"] for item in level2["items"]) == [300, 600]
    assert (await client.get("/affiliate/commissions", params={"level": 1}, headers=recruiter)).json()["total"] == 0
    assert (await client.get("/affiliate/commissions")).status_code == 401


async def test_the_partner_list_pages_and_filters(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    seller = await headers_for(database, settings, world.seller)
    first = (await client.get("/affiliate/commissions", params={"limit": 1}, headers=seller)).json()
    second = (await client.get("/affiliate/commissions", params={"limit": 1, "offset": 1}, headers=seller)).json()
    assert (first["total"], len(first["items"]), len(second["items"])) == (2, 1, 1)
    assert first["items"][0]["id"] != second["items"][0]["id"]
    approved = await client.get("/affiliate/commissions", params={"status": "approved"}, headers=seller)
    assert approved.json()["total"] == 0
    future = (utcnow() + timedelta(days=1)).isoformat()
    assert (await client.get("/affiliate/commissions", params={"from": future}, headers=seller)).json()["total"] == 0
    assert (await client.get("/affiliate/commissions", params={"to": future}, headers=seller)).json()["total"] == 2
    bad = await client.get("/affiliate/commissions", params={"status": "lost", "limit": 0}, headers=seller)
    assert bad.status_code == 422
    assert {error["field"] for error in bad.json()["errors"]} == {"status", "limit"}


async def test_staff_approve_reject_and_adjust_through_the_ledger_and_the_audit(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    finance = await staff(database, settings, Role.FINANCE)
    listed = (
        await client.get("/admin/commissions", params={"partner_id": world.seller.id, "level": 1}, headers=finance)
    ).json()
    by_amount = {item["amount"]: item["id"] for item in listed["items"]}
    small, large = by_amount[500], by_amount[1000]

    approved = await client.post(f"/admin/commissions/{small}/approve", headers=finance)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert (await client.post(f"/admin/commissions/{small}/approve", headers=finance)).status_code == 409
    assert await balances(database, world.seller.id) == (1000, 500)

    no_reason = await client.post(f"/admin/commissions/{large}/reject", json={"reason": ""}, headers=finance)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    rejected = await client.post(
        f"/admin/commissions/{large}/reject", json={"reason": "self-referral"}, headers=finance
    )
    body = rejected.json()
    assert (body["status"], body["reversed_amount"], body["status_reason"]) == (
        "rejected",
        1000,
        "self-referral",
    )
    assert await balances(database, world.seller.id) == (0, 500)

    adjust = {"amount": -650, "reason": "goodwill reversed", "idempotency_key": "adj-1"}
    made = await client.post(f"/admin/commissions/{small}/adjustments", json=adjust, headers=finance)
    assert made.status_code == 201, made.text
    replay = await client.post(f"/admin/commissions/{small}/adjustments", json=adjust, headers=finance)
    assert replay.json()["id"] == made.json()["id"]
    conflict = await client.post(
        f"/admin/commissions/{small}/adjustments", json={**adjust, "amount": -1}, headers=finance
    )
    assert conflict.status_code == 409
    zero = await client.post(f"/admin/commissions/{small}/adjustments", json={**adjust, "amount": 0}, headers=finance)
    assert zero.status_code == 422 and zero.json()["errors"][0]["field"] == "amount"
    assert await balances(database, world.seller.id) == (0, -150)  # an adjustment may leave a debt

    detail = (await client.get(f"/admin/commissions/{small}", headers=finance)).json()
    assert [(a["amount"], a["reason"]) for a in detail["adjustments"]] == [(-650, "goodwill reversed")]
    # platform expense: the commissions (1500 + 900 + 2000), less the rejection and the negative adjustment
    assert await expense(database) == -(1500 + 900 + 2000) + 1000 + 650

    async with database.read() as session:
        small_actions = [e.action for e in await entries_for(session, "commission", small)]
        large_actions = [e.action for e in await entries_for(session, "commission", large)]
        adjustments = await session.scalar(sa.select(sa.func.count()).select_from(CommissionAdjustment))
    assert small_actions == ["commission.approved", "commission.adjusted"]
    assert large_actions == ["commission.rejected"]
    assert adjustments == 1


async def test_viewers_read_but_cannot_act(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    viewer = await staff(database, settings, Role.VIEWER)
    listed = await client.get("/admin/commissions", params={"status": "pending"}, headers=viewer)
    assert listed.json()["total"] == 5
    commission_id = listed.json()["items"][0]["id"]
    adjust = await client.post(
        f"/admin/commissions/{commission_id}/adjustments", json={"amount": 5, "reason": "x"}, headers=viewer
    )
    assert adjust.status_code == 403
    assert (await client.post(f"/admin/commissions/{commission_id}/approve", headers=viewer)).status_code == 403
    reject = await client.post(f"/admin/commissions/{commission_id}/reject", json={"reason": "x"}, headers=viewer)
    assert reject.status_code == 403
    seller = await headers_for(database, settings, world.seller)
    assert (await client.get("/admin/commissions", headers=seller)).status_code == 401
    assert (await client.get("/admin/commissions/999999", headers=viewer)).status_code == 404


async def test_the_approval_job_runs_once_per_configured_period(database: Database, world: World) -> None:
    load_handlers()
    settings = Settings(
        PARTNERS_ENV="test",
        DATABASE_URL="sqlite+aiosqlite:///unused.db",
        SECRET_KEY="test-secret-key-0123456789abcdef",
        COMMISSION_CALCULATION_FREQUENCY="hourly",
    )
    async with database.write() as session:  # the holds are over (the job reads the real clock)
        await session.execute(sa.update(Commission).values(payable_at=utcnow() - timedelta(minutes=1)))
    now = utcnow()
    await tick_schedules(database, settings, now=now)
    await tick_schedules(database, settings, now=now)
    async with database.read() as session:
        keys = list(await session.scalars(sa.select(Job.unique_key).where(Job.name == "commissions.approve_due")))
    assert keys == [f"schedule:commissions.approve_due:{now:%Y-%m-%dT%H}"]
    await run_once(database, worker_id="test", now=now + timedelta(seconds=1))
    async with database.read() as session:
        statuses = set(await session.scalars(sa.select(Commission.status)))
    assert statuses == {"approved"}
    assert await balances(database, world.seller.id) == (0, 1500)
