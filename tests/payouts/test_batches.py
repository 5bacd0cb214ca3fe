"""Batches end to end: request → batch → approval → the provider job → paid / failed / processing →
bank confirmations (paid, failed, returned), with ledger balances asserted to the cent."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.audit.models import AuditEntry
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.identity.roles import Role
from partners.jobs.models import Job
from partners.jobs.registry import load_handlers
from partners.jobs.worker import run_once
from partners.payouts.providers import override_provider
from partners.payouts.providers.base import BatchExecution, PayoutInstruction, ProviderResult
from partners.settings import Settings
from tests.payouts.support import (
    World,
    balances,
    confirmed_method,
    earn,
    headers_for,
    jobs_named,
    make_world,
    run_jobs,
    staff,
    use_test_settings,
)

WISE = {"holder": "Bob Example", "bank_name": "Example Bank", "account_number": "12345678", "country": "GB"}


class Books:
    alice_commissions: list[int]
    bob_commissions: list[int]


@pytest.fixture
async def world(database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[World, Books]:
    load_handlers()
    use_test_settings(monkeypatch, settings)
    found = await make_world(database, settings)
    books = Books()
    async with database.write() as session:
        books.alice_commissions = [
            (await earn(session, found.program, found.alice, amount)).id for amount in (6_000, 4_000, 2_500)
        ]
        books.bob_commissions = [(await earn(session, found.program, found.bob, 9_000)).id]
    await confirmed_method(database, settings, found.alice)
    return found, books


@pytest.fixture
def failing_paypal() -> Iterator[None]:
    class FailingPayPal:
        method = "paypal"

        async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution:
            return BatchExecution(
                results=[
                    ProviderResult(item.payout_id, "failed", None, "RECEIVER_UNREGISTERED: no PayPal account")
                    for item in instructions
                ]
            )

    override_provider("paypal", FailingPayPal())
    yield
    override_provider("paypal", None)


async def _request(client: httpx.AsyncClient, headers: dict[str, str], amount: int) -> dict[str, Any]:
    response = await client.post(
        "/affiliate/payout/request", json={"amount": amount, "currency": "USD"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _statuses(database: Database, ids: list[int]) -> list[str]:
    async with database.read() as session:
        rows = await session.execute(sa.select(Commission.id, Commission.status).where(Commission.id.in_(ids)))
        found = dict(rows.all())
    return [found[commission_id] for commission_id in ids]


async def test_platform_credit_is_paid_in_one_worker_cycle_after_approval(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: tuple[World, Books]
) -> None:
    found, books = world
    alice = await headers_for(database, settings, found.alice)
    payout = await _request(client, alice, 10_000)
    finance = await staff(database, settings, Role.FINANCE)
    created = await client.post("/admin/payout-batches", json={"currency": "USD"}, headers=finance)
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["totals"] == [{"method": "platform_credit", "currency": "USD", "count": 1, "amount": 10_000}]
    assert batch["required_approvals"] == 1 and batch["status"] == "open"
    approved = await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert await balances(database, found.alice.id) == (12_500, 2_500, 0)

    assert await run_once(database, worker_id="one-cycle") >= 1

    mine = (await client.get(f"/affiliate/payouts/{payout['id']}", headers=alice)).json()
    assert mine["status"] == "paid" and mine["reference"] == f"credit-{payout['id']}"
    assert await balances(database, found.alice.id) == (2_500, 2_500, 10_000)
    assert await _statuses(database, books.alice_commissions) == ["paid", "paid", "approved"]
    detail = (await client.get(f"/admin/payout-batches/{batch['id']}", headers=finance)).json()
    assert detail["status"] == "completed"
    callbacks = await jobs_named(database, "payouts.notify_host")
    assert [job.payload for job in callbacks] == [{"payout_id": payout["id"]}]
    async with database.read() as session:
        actions = list(
            await session.scalars(sa.select(AuditEntry.action).where(AuditEntry.subject_type == "payout_batch"))
        )
    assert actions == ["payout_batch.created", "payout_batch.approved"]


async def test_a_failed_payout_makes_the_money_available_again_and_tells_the_partner(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    world: tuple[World, Books],
    failing_paypal: None,
) -> None:
    found, books = world
    await confirmed_method(database, settings, found.bob, method="paypal", details={"email": "bob@example.com"})
    bob = await headers_for(database, settings, found.bob)
    payout = await _request(client, bob, 9_000)
    assert await balances(database, found.bob.id) == (9_000, 0, 0)
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={"method": "paypal"}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    await run_once(database, worker_id="tests")

    mine = (await client.get(f"/affiliate/payouts/{payout['id']}", headers=bob)).json()
    assert mine["status"] == "failed"
    assert mine["failure_reason"] == "RECEIVER_UNREGISTERED: no PayPal account"
    assert await balances(database, found.bob.id) == (9_000, 9_000, 0)
    assert await _statuses(database, books.bob_commissions) == ["approved"]
    emails = [job.payload for job in await jobs_named(database, "mail.send") if job.payload["to"] == found.bob.email]
    assert any("RECEIVER_UNREGISTERED" in email["text"] and "failed" in email["subject"] for email in emails)
    # the money can be requested again
    assert (await _request(client, bob, 9_000))["status"] == "pending"


async def test_manual_rail_file_and_bank_confirmations_paid_failed_returned(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: tuple[World, Books]
) -> None:
    found, books = world
    await confirmed_method(database, settings, found.alice, currency="USD", method="wise", details=WISE)
    await confirmed_method(database, settings, found.bob, currency="USD", method="wise", details=WISE)
    alice = await headers_for(database, settings, found.alice)
    bob = await headers_for(database, settings, found.bob)
    alice_payout = await _request(client, alice, 10_000)
    bob_payout = await _request(client, bob, 9_000)
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={"method": "wise"}, headers=finance)).json()
    assert batch["totals"] == [{"method": "wise", "currency": "USD", "count": 2, "amount": 19_000}]
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    await run_jobs(database)

    detail = (await client.get(f"/admin/payout-batches/{batch['id']}", headers=finance)).json()
    assert detail["status"] == "processing"
    assert {item["status"] for item in detail["payouts"]} == {"processing"}
    [file] = detail["files"]
    downloaded = await client.get(f"/admin/payout-batches/{batch['id']}/files/{file['name']}", headers=finance)
    assert downloaded.status_code == 200
    text = downloaded.content.decode("utf-8-sig")
    assert str(alice_payout["id"]) in text and "12345678" in text
    viewer = await staff(database, settings, Role.VIEWER)
    assert (
        await client.get(f"/admin/payout-batches/{batch['id']}/files/{file['name']}", headers=viewer)
    ).status_code == 403
    assert (await client.get(f"/admin/payout-batches/{batch['id']}/files/nope.csv", headers=finance)).status_code == 404

    csv_text = (
        "payout_id,status,reference,reason\n"
        f"{alice_payout['id']},paid,BANK-1,\n"
        f"{bob_payout['id']},failed,,account closed\n"
    )
    upload = await client.post(
        f"/admin/payout-batches/{batch['id']}/confirmations",
        files={"file": ("confirm.csv", io.BytesIO(csv_text.encode()), "text/csv")},
        headers=finance,
    )
    assert upload.status_code == 200, upload.text
    assert upload.json() == {
        "paid": [alice_payout["id"]], "failed": [bob_payout["id"]], "returned": [], "unchanged": []
    }  # fmt: skip
    assert await balances(database, found.alice.id) == (2_500, 2_500, 10_000)
    assert await balances(database, found.bob.id) == (9_000, 9_000, 10_000)
    assert await _statuses(database, books.alice_commissions) == ["paid", "paid", "approved"]
    again = await client.post(
        f"/admin/payout-batches/{batch['id']}/confirmations",
        files={"file": ("confirm.csv", io.BytesIO(csv_text.encode()), "text/csv")},
        headers=finance,
    )
    assert again.json()["unchanged"] == [alice_payout["id"], bob_payout["id"]]
    assert (await client.get(f"/admin/payout-batches/{batch['id']}", headers=finance)).json()["status"] == ("completed")

    returned = await client.post(
        f"/admin/payout-batches/{batch['id']}/confirmations",
        files={"file": ("r.csv", io.BytesIO(f"payout_id,status\n{alice_payout['id']},returned\n".encode()))},
        headers=finance,
    )
    assert returned.status_code == 200 and returned.json()["returned"] == [alice_payout["id"]]
    mine = (await client.get(f"/affiliate/payouts/{alice_payout['id']}", headers=alice)).json()
    assert mine["status"] == "returned" and mine["returned_at"] is not None
    assert await balances(database, found.alice.id) == (12_500, 12_500, 0)
    assert await _statuses(database, books.alice_commissions) == ["approved", "approved", "approved"]


async def test_a_bad_confirmation_file_changes_nothing_and_names_the_line(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: tuple[World, Books]
) -> None:
    found, _books = world
    await confirmed_method(database, settings, found.alice, method="wise", details=WISE)
    alice = await headers_for(database, settings, found.alice)
    payout = await _request(client, alice, 10_000)
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    await run_jobs(database)
    bad = f"payout_id,status\n{payout['id']},paid\n999999,paid\n"
    response = await client.post(
        f"/admin/payout-batches/{batch['id']}/confirmations",
        files={"file": ("c.csv", io.BytesIO(bad.encode()))},
        headers=finance,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "file" and "line 3" in response.json()["detail"]
    assert await balances(database, found.alice.id) == (12_500, 2_500, 0)
    support = await staff(database, settings, Role.SUPPORT)
    assert (
        await client.post(
            f"/admin/payout-batches/{batch['id']}/confirmations",
            files={"file": ("c.csv", io.BytesIO(bad.encode()))},
            headers=support,
        )
    ).status_code == 403


async def test_above_the_limit_a_second_different_approver_is_required(
    app: Any, client: httpx.AsyncClient, database: Database, settings: Settings, world: tuple[World, Books]
) -> None:
    found, _books = world
    app.state.settings = settings.model_copy(update={"payout_second_approval_amount": Decimal("99.99")})
    alice = await headers_for(database, settings, found.alice)
    await _request(client, alice, 10_000)  # 100.00 USD > 99.99
    support = await staff(database, settings, Role.SUPPORT)
    assert (await client.post("/admin/payout-batches", json={}, headers=support)).status_code == 403
    first = await staff(database, settings, Role.FINANCE)
    second = await staff(database, settings, Role.FINANCE)
    viewer = await staff(database, settings, Role.VIEWER)
    batch = (await client.post("/admin/payout-batches", json={}, headers=first)).json()
    assert batch["required_approvals"] == 2
    assert (await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=viewer)).status_code == 403
    once = await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=first)
    assert once.status_code == 200 and once.json()["status"] == "open"
    twice = await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=first)
    assert twice.status_code == 409 and "different approver" in twice.json()["detail"]
    assert await jobs_named(database, "payouts.execute_batch") == []
    done = await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=second)
    assert done.status_code == 200 and done.json()["status"] == "approved"
    assert len(done.json()["approved_by"]) == 2
    assert len(await jobs_named(database, "payouts.execute_batch")) == 1
    late = await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=viewer)
    assert late.status_code == 403


async def test_below_the_limit_one_approval_is_enough_and_empty_batches_are_refused(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: tuple[World, Books]
) -> None:
    found, _books = world
    finance = await staff(database, settings, Role.FINANCE)
    empty = await client.post("/admin/payout-batches", json={}, headers=finance)
    assert empty.status_code == 422
    alice = await headers_for(database, settings, found.alice)
    payout = await _request(client, alice, 10_000)
    batch = (await client.post("/admin/payout-batches", json={}, headers=finance)).json()
    assert batch["required_approvals"] == 1
    # a partner may still cancel while the batch awaits approval
    cancelled = await client.post(f"/affiliate/payouts/{payout['id']}/cancel", headers=alice)
    assert cancelled.status_code == 200
    assert (await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)).status_code == 409
    assert await balances(database, found.alice.id) == (12_500, 12_500, 0)


async def test_an_approved_payout_can_no_longer_be_cancelled(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: tuple[World, Books]
) -> None:
    found, _books = world
    alice = await headers_for(database, settings, found.alice)
    payout = await _request(client, alice, 10_000)
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    refused = await client.post(f"/affiliate/payouts/{payout['id']}/cancel", headers=alice)
    assert refused.status_code == 409
    async with database.read() as session:
        jobs = list(await session.scalars(sa.select(Job.name)))
    assert "payouts.execute_batch" in jobs


@pytest.mark.parametrize(
    ("method", "currency", "details", "file_name", "needle"),
    [
        (
            "sepa",
            "EUR",
            {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "holder": "Alice Example"},
            "sepa-batch-{id}.xml",
            b'<InstdAmt Ccy="EUR">123.45</InstdAmt>',
        ),
        (
            "ach",
            "USD",
            {"routing_number": "021000021", "account_number": "123456789", "holder": "Alice Example"},
            "ach-batch-{id}.ach",
            b"0000012345",
        ),
    ],
)
async def test_bank_file_rails_produce_a_file_and_wait_for_the_bank(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    world: tuple[World, Books],
    method: str,
    currency: str,
    details: dict[str, str],
    file_name: str,
    needle: bytes,
) -> None:
    found, _books = world
    before = await balances(database, found.alice.id, currency)
    async with database.write() as session:
        await earn(session, found.program, found.alice, 12_345, currency=currency)
    await confirmed_method(database, settings, found.alice, currency=currency, method=method, details=details)
    alice = await headers_for(database, settings, found.alice)
    response = await client.post(
        "/affiliate/payout/request", json={"amount": 12_345, "currency": currency}, headers=alice
    )
    assert response.status_code == 201, response.text
    payout_id = response.json()["id"]
    finance = await staff(database, settings, Role.FINANCE)
    batch = (await client.post("/admin/payout-batches", json={"method": method}, headers=finance)).json()
    await client.post(f"/admin/payout-batches/{batch['id']}/approve", headers=finance)
    await run_jobs(database)

    detail = (await client.get(f"/admin/payout-batches/{batch['id']}", headers=finance)).json()
    assert [item["status"] for item in detail["payouts"]] == ["processing"]
    name = file_name.format(id=batch["id"])
    assert [file["name"] for file in detail["files"]] == [name]
    content = (await client.get(f"/admin/payout-batches/{batch['id']}/files/{name}", headers=finance)).content
    assert needle in content
    assert await balances(database, found.alice.id, currency) == (before.posted + 12_345, before.available, 0)
    upload = await client.post(
        f"/admin/payout-batches/{batch['id']}/confirmations",
        files={"file": ("c.csv", io.BytesIO(f"payout_id,status,reference\n{payout_id},paid,E2E-1\n".encode()))},
        headers=finance,
    )
    assert upload.json()["paid"] == [payout_id]
    assert await balances(database, found.alice.id, currency) == (before.posted, before.available, 12_345)
