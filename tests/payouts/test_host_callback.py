"""The platform-credit callback: a signed (Standard Webhooks) POST to a real HTTP server on loopback that
verifies the signature and credits each payout once, however often it is delivered."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from partners.db.session import Database
from partners.identity.roles import Role
from partners.jobs.models import Job
from partners.jobs.registry import load_handlers
from partners.payouts.models import Payout
from partners.payouts.tasks import notify_host
from partners.settings import Settings
from tests.payouts.support import (
    World,
    confirmed_method,
    earn,
    headers_for,
    make_world,
    run_jobs,
    staff,
    use_test_settings,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Wallets:
    """The host's side: credits by payout id (deliveries deduplicated by webhook-id)."""

    secret: str
    credits: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[str] = field(default_factory=list)
    rejected: int = 0


@pytest.fixture
def host() -> Iterator[tuple[str, Wallets]]:
    wallets = Wallets(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            try:
                payload = Webhook(wallets.secret).verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                wallets.rejected += 1
                self.send_response(401)
                self.end_headers()
                return
            message_id = self.headers["webhook-id"]
            wallets.deliveries.append(message_id)
            wallets.credits.setdefault(message_id, payload["data"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/wallet/callback", wallets
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def paid_payout(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    host: tuple[str, Wallets],
) -> tuple[World, int, Settings]:
    load_handlers()
    url, _wallets = host
    settings = settings.model_copy(update={"host_callback_url": url, "host_callback_secret": SECRET})
    use_test_settings(monkeypatch, settings)
    world = await make_world(database, settings)
    async with database.write() as session:
        partner = await session.get(type(world.alice), world.alice.id)
        assert partner is not None
        partner.external_id = "host-user-42"
        await earn(session, world.program, partner, 7_500)
    await confirmed_method(database, settings, world.alice)
    alice = await headers_for(database, settings, world.alice)
    payout = await client.post("/affiliate/payout/request", json={"amount": 7_500, "currency": "USD"}, headers=alice)
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    return world, int(payout.json()["id"]), settings


async def test_the_host_gets_a_signed_callback_once_per_payout(
    database: Database, host: tuple[str, Wallets], paid_payout: tuple[World, int, Settings]
) -> None:
    _url, wallets = host
    world, payout_id, _settings = paid_payout
    await run_jobs(database)

    assert wallets.rejected == 0
    assert wallets.credits == {
        f"payout_{payout_id}": {
            "payout_id": payout_id,
            "partner_id": world.alice.id,
            "partner_external_id": "host-user-42",
            "amount": 7_500,
            "currency": "USD",
            "account_reference": "host-user-42",
        }
    }
    async with database.read() as session:
        payout = await session.get(Payout, payout_id)
    assert payout is not None and payout.status == "paid" and payout.host_notified_at is not None

    # a second delivery (at-least-once) carries the same webhook-id: the host credits once
    async with database.write() as session:
        await notify_host(session, {"payout_id": payout_id})
    assert wallets.deliveries == [f"payout_{payout_id}", f"payout_{payout_id}"]
    assert len(wallets.credits) == 1


async def test_a_refused_callback_is_retried_not_lost(
    database: Database, host: tuple[str, Wallets], paid_payout: tuple[World, int, Settings]
) -> None:
    _url, wallets = host
    _world, payout_id, _settings = paid_payout
    wallets.secret = "whsec_" + "QUJD" * 8  # the host expects another secret: signatures fail
    await run_jobs(database)
    assert wallets.rejected == 1 and wallets.credits == {}
    async with database.read() as session:
        job = await session.scalar(sa.select(Job).where(Job.name == "payouts.notify_host"))
        payout = await session.get(Payout, payout_id)
    assert job is not None and job.status == "queued" and job.attempts == 1
    assert "401" in (job.last_error or "")
    assert payout is not None and payout.status == "paid" and payout.host_notified_at is None
    # once the secrets agree, the retry gets through
    wallets.secret = SECRET
    async with database.write() as session:
        await notify_host(session, {"payout_id": payout_id})
    assert list(wallets.credits) == [f"payout_{payout_id}"]
    assert json.dumps(wallets.credits[f"payout_{payout_id}"]["amount"]) == "7500"
