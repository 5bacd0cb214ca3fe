"""The payout statement PDF: its text (extracted with pypdf) lists the commissions paid, the adjustments, the
clawbacks netted and the account activity."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from partners.audit.service import Actor
from partners.commissions import service as commissions
from partners.db.session import Database
from partners.identity.roles import Role
from partners.jobs.registry import load_handlers
from partners.jobs.worker import run_once
from partners.settings import Settings
from tests.payouts.support import (
    balances,
    confirmed_method,
    earn,
    headers_for,
    make_world,
    refund,
    staff,
    use_test_settings,
)


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


async def _pay(client: httpx.AsyncClient, database: Database, finance: dict[str, str]) -> None:
    batch = (await client.post("/admin/payout-batches", json={}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    await run_once(database, worker_id="tests")


async def _request(client: httpx.AsyncClient, headers: dict[str, str], amount: int) -> dict[str, Any]:
    response = await client.post(
        "/affiliate/payout/request", json={"amount": amount, "currency": "USD"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_statements_show_commissions_adjustments_and_netted_clawbacks(
    client: httpx.AsyncClient, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_handlers()
    use_test_settings(monkeypatch, settings)
    world = await make_world(database, settings)
    async with database.write() as session:
        first = await earn(session, world.program, world.alice, 10_000)
        second = await earn(session, world.program, world.alice, 5_000)
        await commissions.adjust(
            session, Actor("staff", "1"), second.id, amount=500, reason="March bonus", idempotency_key="b1"
        )
    await confirmed_method(database, settings, world.alice)
    alice = await headers_for(database, settings, world.alice)
    finance = await staff(database, settings, Role.FINANCE)
    payout1 = await _request(client, alice, 15_500)
    await _pay(client, database, finance)

    async with database.write() as session:
        assert await refund(session, first.id, 0.5, key="refund-1") == 5_000
    assert await balances(database, world.alice.id) == (-5_000, -5_000, 15_500)
    async with database.write() as session:
        third = await earn(session, world.program, world.alice, 20_000)
    payout2 = await _request(client, alice, 15_000)

    response = await client.get(f"/affiliate/payouts/{payout1['id']}/statement.pdf", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    assert f"Payout statement #{payout1['id']}" in text
    assert "status paid" in text
    assert "Commissions paid by this payout" in text
    assert f"#{first.id}" in text and f"#{second.id}" in text
    assert "100.00 USD" in text and "55.00 USD" in text  # 50.00 earned + 5.00 adjusted
    assert "March bonus" in text and "5.00 USD" in text
    assert "Commissions total: 155.00 USD" in text
    assert "Total of this payout: 155.00 USD" in text

    text2 = pdf_text((await client.get(f"/affiliate/payouts/{payout2['id']}/statement.pdf", headers=alice)).content)
    assert f"#{third.id}" in text2 and "200.00 USD" in text2
    assert "Clawbacks netted" in text2
    assert f"#{first.id}" in text2 and "-50.00 USD" in text2
    assert "Clawbacks total: -50.00 USD" in text2
    assert "Clawback (refund or chargeback) (commission" in text2
    assert "Total of this payout: 150.00 USD" in text2
