"""Payout requests: minimum, available balance, the ledger hold, Idempotency-Key, listing, cancelling, and
partner isolation."""

from __future__ import annotations

import httpx
import pytest

from partners.db.session import Database
from partners.ledger.models import LedgerHold
from partners.settings import Settings
from tests.payouts.support import World, balances, confirmed_method, earn, headers_for, make_world


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    found = await make_world(database, settings)
    async with database.write() as session:
        await earn(session, found.program, found.alice, 12_345)
        await earn(session, found.program, found.bob, 7_000)
    await confirmed_method(database, settings, found.alice)
    await confirmed_method(database, settings, found.bob)
    return found


async def _request(
    client: httpx.AsyncClient, headers: dict[str, str], amount: int, *, key: str | None = None
) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post(
        "/affiliate/payout/request", json={"amount": amount, "currency": "USD"}, headers={**headers, **extra}
    )


async def test_a_request_reserves_the_amount_with_a_ledger_hold(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    response = await _request(client, alice, 10_000)
    assert response.status_code == 201, response.text
    payout = response.json()
    assert (payout["status"], payout["amount"], payout["method"]) == ("pending", 10_000, "platform_credit")
    assert await balances(database, world.alice.id) == (12_345, 2_345, 0)
    async with database.read() as session:
        hold = await session.get(LedgerHold, 1)
    assert hold is not None and hold.idempotency_key == f"payout:{payout['id']}:reserve"
    assert hold.status == "pending" and hold.amount == 10_000
    listed = (await client.get("/affiliate/payout/balances", headers=alice)).json()
    assert listed == [{"currency": "USD", "available": 2_345, "minimum": 5_000}]


async def test_below_the_minimum_or_above_the_available_balance_is_refused(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    small = await _request(client, alice, 4_999)
    assert small.status_code == 422 and small.json()["errors"][0]["field"] == "amount"
    assert "minimum" in small.json()["detail"]
    large = await _request(client, alice, 12_346)
    assert large.status_code == 422 and large.json()["errors"][0]["field"] == "amount"
    assert "12345" in large.json()["detail"]
    assert (await _request(client, alice, 12_345)).status_code == 201
    again = await _request(client, alice, 5_000)
    assert again.status_code == 422
    assert await balances(database, world.alice.id) == (12_345, 0, 0)


async def test_the_same_idempotency_key_returns_the_same_payout(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    first = await _request(client, alice, 6_000, key="k-1")
    second = await _request(client, alice, 6_000, key="k-1")
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    other = await _request(client, alice, 6_001, key="k-1")
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await balances(database, world.alice.id) == (12_345, 6_345, 0)
    # another partner's key space is its own
    bob = await headers_for(database, settings, world.bob)
    assert (await _request(client, bob, 6_000, key="k-1")).status_code == 201


async def test_list_filters_by_status_and_paginates(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    ids = [(await _request(client, alice, 5_000)).json()["id"]]
    async with database.write() as session:
        await earn(session, world.program, world.alice, 10_000)
    ids.append((await _request(client, alice, 5_000)).json()["id"])
    ids.append((await _request(client, alice, 5_000)).json()["id"])
    cancelled = await client.post(f"/affiliate/payouts/{ids[1]}/cancel", headers=alice)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    page = (await client.get("/affiliate/payouts", params={"limit": 2}, headers=alice)).json()
    assert page["total"] == 3 and [item["id"] for item in page["items"]] == [ids[2], ids[1]]
    rest = (await client.get("/affiliate/payouts", params={"limit": 2, "offset": 2}, headers=alice)).json()
    assert [item["id"] for item in rest["items"]] == [ids[0]]
    pending = (await client.get("/affiliate/payouts", params={"status": "pending"}, headers=alice)).json()
    assert sorted(item["id"] for item in pending["items"]) == [ids[0], ids[2]]
    # the cancelled hold was voided: 22,345 earned, 10,000 still reserved
    assert await balances(database, world.alice.id) == (22_345, 12_345, 0)


async def test_a_partner_cannot_see_or_touch_another_partners_payouts(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    bob = await headers_for(database, settings, world.bob)
    payout_id = (await _request(client, alice, 6_000)).json()["id"]
    for response in (
        await client.get(f"/affiliate/payouts/{payout_id}", headers=bob),
        await client.post(f"/affiliate/payouts/{payout_id}/cancel", headers=bob),
        await client.get(f"/affiliate/payouts/{payout_id}/statement.pdf", headers=bob),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/affiliate/payouts", headers=bob)).json()["total"] == 0
    assert (await client.get(f"/affiliate/payouts/{payout_id}", headers=alice)).status_code == 200
    assert (await client.get("/admin/payouts", headers=alice)).status_code == 401
    assert await balances(database, world.alice.id) == (12_345, 6_345, 0)


async def test_only_approved_partners_request_and_anonymous_callers_are_refused(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    assert (await _request(client, {}, 6_000)).status_code == 401
    async with database.write() as session:
        partner = await session.get(type(world.alice), world.alice.id)
        assert partner is not None
        partner.status = "suspended"
    alice = await headers_for(database, settings, world.alice)
    assert (await _request(client, alice, 6_000)).status_code == 403
