"""Concurrent payout requests: real requests, each on its own committing connection, started together."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.payouts.models import Payout
from partners.settings import Settings
from tests.payouts.support import World, balances, confirmed_method, earn, headers_for, make_world

REQUESTS = 10


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    found = await make_world(database, settings)
    async with database.write() as session:
        await earn(session, found.program, found.alice, 12_000)
        await earn(session, found.program, found.alice, 8_000)
    await confirmed_method(database, settings, found.alice)
    return found


async def _payouts(database: Database, partner_id: int) -> list[Payout]:
    async with database.read() as session:
        return list(await session.scalars(sa.select(Payout).where(Payout.partner_id == partner_id)))


async def test_ten_concurrent_requests_never_spend_more_than_the_balance(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    """20,000 available; ten requests of 6,000 at once: exactly three fit."""
    alice = await headers_for(database, settings, world.alice)

    async def request() -> httpx.Response:
        return await client.post("/affiliate/payout/request", json={"amount": 6_000, "currency": "USD"}, headers=alice)

    responses = await asyncio.gather(*(request() for _ in range(REQUESTS)))
    codes = Counter(response.status_code for response in responses)
    assert codes == {201: 3, 422: 7}, [response.text for response in responses]
    refused = [response.json() for response in responses if response.status_code == 422]
    assert all(problem["errors"][0]["field"] == "amount" for problem in refused)
    assert await balances(database, world.alice.id) == (20_000, 2_000, 0)
    payouts = await _payouts(database, world.alice.id)
    assert sorted(payout.amount for payout in payouts) == [6_000, 6_000, 6_000]
    # no commission money is claimed twice: the three payouts' allocations add up to what they pay
    async with database.read() as session:
        allocated = await session.scalar(sa.text("SELECT SUM(amount) FROM payout_allocations"))
        per_commission = (
            await session.execute(
                sa.text("SELECT commission_id, SUM(amount) FROM payout_allocations GROUP BY commission_id")
            )
        ).all()
    assert allocated == 18_000
    assert sorted(total for _id, total in per_commission) == [6_000, 12_000]


async def test_ten_concurrent_retries_of_one_idempotency_key_make_one_payout(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    headers = {**alice, "Idempotency-Key": "payday-1"}

    async def request() -> httpx.Response:
        return await client.post(
            "/affiliate/payout/request", json={"amount": 6_000, "currency": "USD"}, headers=headers
        )

    responses = await asyncio.gather(*(request() for _ in range(REQUESTS)))
    assert Counter(response.status_code for response in responses) == {201: 1, 200: REQUESTS - 1}
    assert len({response.json()["id"] for response in responses}) == 1
    assert await balances(database, world.alice.id) == (20_000, 14_000, 0)
    assert len(await _payouts(database, world.alice.id)) == 1
