from __future__ import annotations

import httpx

from partners.audit.service import entries_for
from partners.db.session import Database
from partners.identity.roles import Role
from partners.settings import Settings
from partners.tracking.models import Customer
from tests.tracking.conftest import World, staff_headers, stored_customer


async def test_staff_create_coupons_and_each_partner_sees_only_their_own(
    client: httpx.AsyncClient, world: World, database: Database, settings: Settings
) -> None:
    admin = await staff_headers(database, settings, Role.ADMIN)
    created = await client.post("/admin/coupons", headers=admin, json={"partner_id": world.alice.id, "code": "alice10"})
    assert created.status_code == 201, created.text
    assert created.json()["code"] == "ALICE10"
    await client.post("/admin/coupons", headers=admin, json={"partner_id": world.bob.id, "code": "BOB-5"})

    duplicate = await client.post("/admin/coupons", headers=admin, json={"partner_id": world.bob.id, "code": "Alice10"})
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["field"] == "code"
    unknown = await client.post("/admin/coupons", headers=admin, json={"partner_id": 999_999, "code": "NOPE1"})
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "partner_id"
    bad = await client.post("/admin/coupons", headers=admin, json={"partner_id": world.bob.id, "code": "no spaces"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "code"

    alices = await client.get("/affiliate/coupons", headers=world.alice_headers)
    assert [coupon["code"] for coupon in alices.json()] == ["ALICE10"]
    bobs = await client.get("/affiliate/coupons", headers=world.bob_headers)
    assert [coupon["code"] for coupon in bobs.json()] == ["BOB-5"]
    listed = await client.get(f"/admin/partners/{world.bob.id}/coupons", headers=admin)
    assert [coupon["code"] for coupon in listed.json()] == ["BOB-5"]
    async with database.read() as session:
        [entry] = await entries_for(session, "coupon", created.json()["id"])
    assert (entry.action, entry.details["partner_id"]) == ("coupon.created", world.alice.id)


async def test_a_viewer_cannot_create_coupons_or_reassign(
    client: httpx.AsyncClient, world: World, database: Database, settings: Settings
) -> None:
    viewer = await staff_headers(database, settings, Role.VIEWER)
    coupon = await client.post("/admin/coupons", headers=viewer, json={"partner_id": world.alice.id, "code": "X123"})
    assert coupon.status_code == 403
    reassign = await client.post(
        "/admin/customers/c1/reassign", headers=viewer, json={"partner_id": world.bob.id, "reason": "moved"}
    )
    assert reassign.status_code == 403
    as_partner = await client.post(
        "/admin/coupons", headers=world.alice_headers, json={"partner_id": world.alice.id, "code": "MINE1"}
    )
    assert as_partner.status_code == 401


async def test_reassigning_a_customer_is_audited_with_both_partners_and_the_reason(
    client: httpx.AsyncClient, world: World, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        session.add(
            Customer(
                external_id="cust-9",
                email="c9@example.com",
                program_id=world.program.id,
                partner_id=world.alice.id,
                attributed_via="referral_code",
            )
        )
    admin = await staff_headers(database, settings, Role.SUPPORT)
    url = "/admin/customers/cust-9/reassign"

    no_reason = await client.post(url, headers=admin, json={"partner_id": world.bob.id})
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"

    response = await client.post(url, headers=admin, json={"partner_id": world.bob.id, "reason": "ticket #12"})
    assert response.status_code == 200, response.text
    assert (response.json()["partner_id"], response.json()["attributed_via"]) == (world.bob.id, "admin")
    customer = await stored_customer(database, "cust-9")
    assert customer.partner_id == world.bob.id
    async with database.read() as session:
        [entry] = await entries_for(session, "customer", customer.id)
    assert entry.action == "customer.reassigned"
    assert entry.actor_kind == "staff"
    assert entry.details == {
        "external_id": "cust-9",
        "from_partner_id": world.alice.id,
        "to_partner_id": world.bob.id,
        "reason": "ticket #12",
    }

    again = await client.post(url, headers=admin, json={"partner_id": world.bob.id, "reason": "again"})
    assert again.status_code == 409
    missing = await client.post(
        "/admin/customers/nobody/reassign",
        headers=admin,
        json={"partner_id": world.bob.id, "reason": "x-y-z"},
    )
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "external_id"
    no_partner = await client.post(url, headers=admin, json={"partner_id": 999_999, "reason": "typo"})
    assert no_partner.status_code == 404
    assert no_partner.json()["errors"][0]["field"] == "partner_id"
