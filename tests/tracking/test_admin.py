from __future__ import annotations

import httpx

from partners.audit.service import entries_for
from partners.db.session import Database
from partners.identity.roles import Role
from partners.settings import Settings
from partners.tracking.models import Customer
from tests.factories import host_headers
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


async def test_staff_switch_a_coupon_off_and_it_stops_attributing(
    client: httpx.AsyncClient, world: World, database: Database, settings: Settings
) -> None:
    admin = await staff_headers(database, settings, Role.ADMIN)
    viewer = await staff_headers(database, settings, Role.VIEWER)
    await client.post("/admin/coupons", headers=admin, json={"partner_id": world.alice.id, "code": "SPRING10"})

    refused = await client.post("/admin/coupons/spring10/deactivate", headers=viewer)
    assert refused.status_code == 403
    off = await client.post("/admin/coupons/spring10/deactivate", headers=admin)  # any case
    assert off.status_code == 200 and off.json()["active"] is False
    unknown = await client.post("/admin/coupons/NOPE/deactivate", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "code"

    host = await host_key(database, settings)
    signup = await client.post(
        "/events/signup",
        headers=host,
        json={"external_id": "c-coupon-off", "email": "off@example.com", "coupon_code": "SPRING10"},
    )
    assert signup.status_code == 201 and signup.json()["partner"] is None  # no longer attributes

    on = await client.post("/admin/coupons/SPRING10/activate", headers=admin)
    assert on.status_code == 200 and on.json()["active"] is True
    again = await client.post(
        "/events/signup",
        headers=host,
        json={"external_id": "c-coupon-on", "email": "on@example.com", "coupon_code": "SPRING10"},
    )
    assert again.json()["partner"] == world.alice.referral_code
    async with database.read() as session:
        actions = [entry.action for entry in await entries_for(session, "coupon", off.json()["id"])]
    assert actions == ["coupon.created", "coupon.deactivated", "coupon.activated"]


async def host_key(database: Database, settings: Settings) -> dict[str, str]:
    async with database.write() as session:
        return await host_headers(session, settings, "events:write")
