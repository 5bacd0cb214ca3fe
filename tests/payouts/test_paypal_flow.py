"""PayPal end to end, against the local stand-in of the Payouts API: approve → one worker cycle → paid or
failed; items PayPal still holds are polled by a later job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity.roles import Role
from partners.jobs.registry import load_handlers
from partners.jobs.worker import run_once
from partners.programs.models import Tier
from partners.settings import Settings
from tests.factories import create_partner
from tests.payouts.providers.paypal_server import PayPalState, running_paypal
from tests.payouts.support import (
    balances,
    confirmed_method,
    earn,
    headers_for,
    jobs_named,
    make_world,
    staff,
    use_test_settings,
)


@pytest.fixture
def paypal() -> Iterator[PayPalState]:
    with running_paypal() as state:
        yield state


async def test_paypal_payouts_settle_in_one_worker_cycle_and_stragglers_are_polled(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    paypal: PayPalState,
) -> None:
    load_handlers()
    settings = settings.model_copy(
        update={
            "paypal_base_url": paypal.base_url,
            "paypal_client_id": paypal.client_id,
            "paypal_client_secret": paypal.client_secret,
            "paypal_poll_attempts": 2,
            "paypal_poll_interval_seconds": 0.01,
        }
    )
    use_test_settings(monkeypatch, settings)
    paypal.set_outcome("nobody@example.com", "FAILED", {"name": "RECEIVER_UNREGISTERED", "message": "Unregistered"})
    paypal.set_outcome("later@example.com", "UNCLAIMED")
    world = await make_world(database, settings)
    async with database.write() as session:
        tier = await session.get(Tier, world.alice.tier_id)
        assert tier is not None
        carol = await create_partner(session, world.program, tier, name="Carol")
        for partner in (world.alice, world.bob, carol):
            await earn(session, world.program, partner, 8_000)
    emails = {world.alice.id: "ok@example.com", world.bob.id: "nobody@example.com", carol.id: "later@example.com"}
    ids: dict[int, int] = {}
    for partner in (world.alice, world.bob, carol):
        await confirmed_method(database, settings, partner, method="paypal", details={"email": emails[partner.id]})
        headers = await headers_for(database, settings, partner)
        response = await client.post(
            "/affiliate/payout/request", json={"amount": 8_000, "currency": "USD"}, headers=headers
        )
        ids[partner.id] = response.json()["id"]
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={"method": "paypal"}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)

    await run_once(database, worker_id="one-cycle")

    detail = (await client.get(f"/admin/payout-batches/{batch['id']}", headers=finance)).json()
    status = {item["id"]: (item["status"], item["failure_reason"]) for item in detail["payouts"]}
    assert status == {
        ids[world.alice.id]: ("paid", ""),
        ids[world.bob.id]: ("failed", "PayPal: Unregistered"),
        ids[carol.id]: ("processing", ""),
    }
    assert await balances(database, world.alice.id) == (0, 0, 8_000)
    assert await balances(database, world.bob.id) == (8_000, 8_000, 8_000)
    assert await balances(database, carol.id) == (8_000, 0, 8_000)
    assert len(paypal.create_bodies) == 1  # one PayPal batch for the three
    [poll] = await jobs_named(database, "payouts.poll_rail")
    assert poll.payload == {"batch_id": batch["id"], "method": "paypal"}

    paypal.set_outcome("later@example.com", "SUCCESS")
    await run_once(database, worker_id="later", now=utcnow() + timedelta(hours=1))
    detail = (await client.get(f"/admin/payout-batches/{batch['id']}", headers=finance)).json()
    assert detail["status"] == "completed"
    assert await balances(database, carol.id) == (0, 0, 16_000)
    assert len(paypal.create_bodies) == 1
