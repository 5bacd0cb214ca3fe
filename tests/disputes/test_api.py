"""Dispute flows end to end through the API: opening, the thread, evidence, decisions, isolation, roles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.audit.service import entries_for
from partners.db.session import Database
from partners.db.types import utcnow
from partners.events.models import Purchase
from partners.jobs.models import Job
from partners.ledger.models import LedgerTransaction
from partners.mail.service import SEND_MAIL_JOB
from partners.settings import Settings
from partners.tracking.models import Customer
from tests.commissions.support import balances, expense
from tests.disputes.conftest import FAKE_EXE, World, tiny_pdf, tiny_png
from tests.mail.support import messages_to, plain_text, run_jobs, use_mail_settings

INBOX = "disputes@namaskah.local"


async def open_on_commission(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    body = {
        "kind": "wrong_amount",
        "commission_id": world.seller_commission_id,
        "message": "The rate should be 15%, not 5%.",
    }
    body.update(fields)
    response = await client.post("/affiliate/disputes", json=body, headers=world.seller_headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def open_missing_conversion(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    body = {
        "kind": "missing_conversion",
        "order_reference": "ORD-7731",
        "order_date": (utcnow() - timedelta(days=3)).date().isoformat(),
        "customer_external_id": world.lost_customer,
        "message": "My referral bought credits but nothing was tracked.",
    }
    body.update(fields)
    response = await client.post("/affiliate/disputes", json=body, headers=world.seller_headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def mail_jobs_to(database: Database, address: str) -> list[dict[str, Any]]:
    async with database.read() as session:
        jobs = await session.scalars(sa.select(Job).where(Job.name == SEND_MAIL_JOB).order_by(Job.id))
        return [job.payload for job in jobs if job.payload["to"] == address]


async def resolve(client: httpx.AsyncClient, world: World, dispute_id: int, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/admin/disputes/{dispute_id}/resolve", json=body, headers=world.support)


async def audit_actions(database: Database, dispute_id: int) -> list[str]:
    async with database.read() as session:
        return [entry.action for entry in await entries_for(session, "dispute", dispute_id)]


def field_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["field"])


# --- opening -------------------------------------------------------------------------------------------


async def test_a_partner_opens_a_dispute_on_its_own_commission_and_staff_hear_of_it(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    dispute = await open_on_commission(client, world, claimed_amount=1000)
    assert (dispute["status"], dispute["kind"], dispute["commission_id"]) == (
        "open",
        "wrong_amount",
        world.seller_commission_id,
    )
    assert (dispute["claimed_amount"], dispute["currency"], dispute["partner_id"]) == (
        1000,
        "USD",
        world.seller.id,
    )
    assert [(m["author_kind"], m["body"]) for m in dispute["messages"]] == [
        ("partner", "The rate should be 15%, not 5%.")
    ]
    sla = dispute["sla"]
    assert sla["target_hours"] == 48 and sla["breached"] is False
    assert sla["waiting_on_staff_seconds"] >= 0 and sla["since_last_staff_reply_seconds"] is None
    assert sla["due_at"] is not None
    emails = await mail_jobs_to(database, INBOX)
    assert len(emails) == 1
    assert f"[dispute #{dispute['id']}]" in emails[0]["subject"] and "15%" in emails[0]["text"]
    assert await audit_actions(database, dispute["id"]) == ["dispute.opened"]

    again = await client.post(
        "/affiliate/disputes",
        json={"kind": "other", "commission_id": world.seller_commission_id, "message": "again"},
        headers=world.seller_headers,
    )
    assert again.status_code == 409 and field_of(again) == "commission_id"


async def test_a_dispute_on_another_partners_commission_is_not_found(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    for commission_id in (world.other_commission_id, 999_999):
        response = await client.post(
            "/affiliate/disputes",
            json={"kind": "reversed_unfairly", "commission_id": commission_id, "message": "mine!"},
            headers=world.seller_headers,
        )
        assert response.status_code == 404 and field_of(response) == "commission_id"
    assert await mail_jobs_to(database, INBOX) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "wrong_amount", "message": "no commission named"}, "commission_id"),
        ({"kind": "missing_conversion", "order_date": "2026-01-02", "message": "m"}, "order_reference"),
        ({"kind": "missing_conversion", "order_reference": "X1", "message": "m"}, "order_date"),
        (
            {
                "kind": "missing_conversion",
                "order_reference": "X1",
                "order_date": "2999-01-01",
                "message": "m",
            },
            "order_date",
        ),
        ({"kind": "lost", "message": "m"}, "kind"),
        ({"kind": "other", "commission_id": 1, "message": ""}, "message"),
        ({"kind": "other", "commission_id": 1, "message": "m", "claimed_amount": -5}, "claimed_amount"),
        (
            {
                "kind": "missing_conversion",
                "order_reference": "X",
                "order_date": "2026-01-02",
                "message": "m",
                "currency": "ZZZ",
            },
            "currency",
        ),
    ],
)
async def test_an_invalid_dispute_names_the_field(
    client: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/affiliate/disputes", json=body, headers=world.seller_headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field_of(response) == field


# --- evidence ------------------------------------------------------------------------------------------


async def test_a_missing_conversion_with_evidence_files_checked_by_content(
    client: httpx.AsyncClient, world: World, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispute = await open_missing_conversion(client, world)
    assert (dispute["order_reference"], dispute["currency"], dispute["commission_id"]) == (
        "ORD-7731",
        "USD",
        None,
    )
    url = f"/affiliate/disputes/{dispute['id']}/evidence"
    png, pdf = tiny_png(), tiny_pdf()
    files = [
        ("files", ("receipt.png", png, "image/png")),
        ("files", ("../../invoice.PDF", pdf, "application/pdf")),
    ]
    stored = await client.post(url, files=files, headers=world.seller_headers)
    assert stored.status_code == 201, stored.text
    assert [(e["filename"], e["content_type"], e["size_bytes"]) for e in stored.json()] == [
        ("receipt.png", "image/png", len(png)),
        ("invoice.PDF", "application/pdf", len(pdf)),
    ]

    renamed_exe = [
        ("files", ("notes.txt", b"order ORD-7731 paid on the 3rd\n", "text/plain")),
        ("files", ("screenshot.png", FAKE_EXE, "image/png")),
    ]
    refused = await client.post(url, files=renamed_exe, headers=world.seller_headers)
    assert refused.status_code == 422 and field_of(refused) == "files"
    assert "screenshot.png" in refused.json()["detail"] and refused.json()["filename"] == "screenshot.png"
    pdf_named_png = await client.post(url, files=[("files", ("x.png", pdf, "image/png"))], headers=world.seller_headers)
    assert pdf_named_png.status_code == 422 and "x.png" in pdf_named_png.json()["detail"]
    not_allowed = await client.post(url, files=[("files", ("run.exe", FAKE_EXE))], headers=world.seller_headers)
    assert not_allowed.status_code == 422 and "run.exe" in not_allowed.json()["detail"]

    monkeypatch.setattr(settings, "dispute_evidence_max_bytes", 1000)
    too_large = await client.post(
        url, files=[("files", ("big.txt", b"a" * 1001, "text/plain"))], headers=world.seller_headers
    )
    assert too_large.status_code == 413 and field_of(too_large) == "files"
    assert "big.txt" in too_large.json()["detail"]
    monkeypatch.setattr(settings, "dispute_evidence_max_files", 3)
    too_many = await client.post(
        url,
        files=[("files", ("a.txt", b"one", "text/plain")), ("files", ("b.txt", b"two", "text/plain"))],
        headers=world.seller_headers,
    )
    assert too_many.status_code == 422 and field_of(too_many) == "files"
    assert "2 already" in too_many.json()["detail"]
    four = [("files", (f"{n}.txt", b"text", "text/plain")) for n in range(4)]
    too_many_at_once = await client.post(url, files=four, headers=world.seller_headers)
    assert too_many_at_once.status_code == 422 and field_of(too_many_at_once) == "files"

    detail = (await client.get(f"/affiliate/disputes/{dispute['id']}", headers=world.seller_headers)).json()
    assert [e["filename"] for e in detail["evidence"]] == ["receipt.png", "invoice.PDF"]  # all or none
    first = detail["evidence"][0]["id"]
    download = await client.get(f"{url}/{first}", headers=world.seller_headers)
    assert download.status_code == 200 and download.content == png
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    staff_copy = await client.get(f"/admin/disputes/{dispute['id']}/evidence/{first}", headers=world.viewer)
    assert staff_copy.status_code == 200 and staff_copy.content == png


# --- the thread ----------------------------------------------------------------------------------------


async def test_thread_messages_both_ways_change_the_status_and_email_each_side(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_mail_settings(monkeypatch, settings)
    dispute = await open_on_commission(client, world)
    path = f"/affiliate/disputes/{dispute['id']}"
    staff_path = f"/admin/disputes/{dispute['id']}"

    reply = await client.post(f"{staff_path}/messages", json={"body": "Which order was it?"}, headers=world.support)
    assert reply.status_code == 201 and reply.json()["author_kind"] == "staff"
    seen = (await client.get(path, headers=world.seller_headers)).json()
    assert seen["status"] == "awaiting_partner"
    assert seen["sla"]["waiting_on_staff_seconds"] is None and seen["sla"]["since_last_staff_reply_seconds"] >= 0

    answer = await client.post(f"{path}/messages", json={"body": "Order ORD-1"}, headers=world.seller_headers)
    assert answer.status_code == 201
    staff_view = (await client.get(staff_path, headers=world.viewer)).json()
    assert staff_view["status"] == "awaiting_staff"
    assert [(m["author_kind"], m["body"]) for m in staff_view["messages"]] == [
        ("partner", "The rate should be 15%, not 5%."),
        ("staff", "Which order was it?"),
        ("partner", "Order ORD-1"),
    ]
    assert staff_view["messages"][1]["author_id"] != ""
    assert staff_view["sla"]["waiting_on_staff_seconds"] >= 0

    assert await run_jobs(database) >= 3
    to_partner = messages_to(settings, "seller@example.com")
    assert len(to_partner) == 1 and "Which order was it?" in plain_text(to_partner[0])
    to_staff = messages_to(settings, INBOX)
    assert len(to_staff) == 2
    assert any("Order ORD-1" in plain_text(message) for message in to_staff)
    assert messages_to(settings, "other@example.com") == []


# --- decisions -----------------------------------------------------------------------------------------


async def test_accept_with_an_adjustment_moves_exactly_the_amount_and_is_audited(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    dispute = await open_on_commission(client, world, claimed_amount=1000)
    pending_before, available_before = await balances(database, world.seller.id)
    expense_before = await expense(database)

    decided = await resolve(
        client, world, dispute["id"], {"decision": "accept", "remedy": "adjustment", "amount": 1234}
    )
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["status"], body["resolution"], body["adjustment_amount"]) == ("accepted", "adjustment", 1234)
    assert body["commission_adjustment_id"] is not None and body["ledger_transaction_id"] is not None
    assert body["sla"]["waiting_on_staff_seconds"] is None and body["resolved_by"] is not None
    assert await balances(database, world.seller.id) == (pending_before, available_before + 1234)
    assert await expense(database) == expense_before - 1234
    assert await audit_actions(database, dispute["id"]) == ["dispute.opened", "dispute.accepted"]

    twice = await resolve(client, world, dispute["id"], {"decision": "reject", "reason": "changed my mind"})
    assert twice.status_code == 409
    again = await resolve(client, world, dispute["id"], {"decision": "accept", "remedy": "adjustment"})
    assert again.status_code == 409
    assert await balances(database, world.seller.id) == (pending_before, available_before + 1234)
    closed = await client.post(
        f"/affiliate/disputes/{dispute['id']}/messages", json={"body": "thanks"}, headers=world.seller_headers
    )
    assert closed.status_code == 409
    decisions = await mail_jobs_to(database, "seller@example.com")
    assert len(decisions) == 1 and "accepted" in decisions[0]["subject"] and "1234" in decisions[0]["text"]


async def test_accept_a_missing_conversion_with_an_adjustment_from_the_platform(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    dispute = await open_missing_conversion(client, world, claimed_amount=700)
    _pending, available_before = await balances(database, world.seller.id)
    decided = await resolve(client, world, dispute["id"], {"decision": "accept", "remedy": "adjustment"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["adjustment_amount"] == 700  # the claimed amount
    assert (await balances(database, world.seller.id))[1] == available_before + 700
    async with database.read() as session:
        transaction = await session.get(LedgerTransaction, decided.json()["ledger_transaction_id"])
    assert transaction is not None and transaction.idempotency_key == f"dispute:{dispute['id']}:adjustment"


async def test_accept_with_a_manual_conversion_creates_the_purchase_and_its_commissions(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    dispute = await open_missing_conversion(client, world)
    no_amount = await resolve(client, world, dispute["id"], {"decision": "accept", "remedy": "conversion"})
    assert no_amount.status_code == 422 and field_of(no_amount) == "purchase_amount"

    decided = await resolve(
        client,
        world,
        dispute["id"],
        {
            "decision": "accept",
            "remedy": "conversion",
            "purchase_amount": 20_000,
            "reason": "host log confirms",
        },
    )
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["status"], body["resolution"], body["resolution_reason"]) == (
        "accepted",
        "conversion",
        "host log confirms",
    )
    assert len(body["commission_ids"]) == 1
    async with database.read() as session:
        purchase = await session.get(Purchase, body["purchase_id"])
        customer = await session.scalar(sa.select(Customer).where(Customer.external_id == world.lost_customer))
    assert purchase is not None and customer is not None
    assert (purchase.external_id, purchase.amount, purchase.partner_id) == (
        "ORD-7731",
        20_000,
        world.seller.id,
    )
    assert (customer.partner_id, customer.attributed_via) == (world.seller.id, "admin")

    mine = (await client.get("/affiliate/commissions", headers=world.seller_headers)).json()
    created = [item for item in mine["items"] if item["id"] == body["commission_ids"][0]]
    assert [(c["purchase_id"], c["amount"], c["status"]) for c in created] == [(purchase.id, 1000, "pending")]
    assert (await client.get(f"/affiliate/disputes/{dispute['id']}", headers=world.seller_headers)).json()[
        "commission_ids"
    ] == body["commission_ids"]
    assert await audit_actions(database, dispute["id"]) == ["dispute.opened", "dispute.accepted"]
    assert (await resolve(client, world, dispute["id"], {"decision": "reject", "reason": "x"})).status_code == 409


async def test_a_manual_conversion_refuses_a_customer_of_another_partner_and_a_commission_dispute(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    claim = await open_missing_conversion(client, world, customer_external_id=world.others_customer)
    conversion = {"decision": "accept", "remedy": "conversion", "purchase_amount": 5_000}
    taken = await resolve(client, world, claim["id"], conversion)
    assert taken.status_code == 409 and field_of(taken) == "customer_external_id"
    on_commission = await open_on_commission(client, world)
    wrong_remedy = await resolve(client, world, on_commission["id"], conversion)
    assert wrong_remedy.status_code == 422 and field_of(wrong_remedy) == "remedy"
    async with database.read() as session:
        assert await session.scalar(sa.select(Purchase.id).where(Purchase.external_id == "ORD-7731")) is None
    still = (await client.get(f"/admin/disputes/{claim['id']}", headers=world.viewer)).json()
    assert still["status"] == "open"


async def test_reject_needs_a_reason_and_is_final(client: httpx.AsyncClient, database: Database, world: World) -> None:
    dispute = await open_on_commission(client, world)
    no_reason = await resolve(client, world, dispute["id"], {"decision": "reject", "reason": "  "})
    assert no_reason.status_code == 422 and field_of(no_reason) == "reason"
    no_remedy = await resolve(client, world, dispute["id"], {"decision": "accept"})
    assert no_remedy.status_code == 422 and field_of(no_remedy) == "remedy"
    _pending, available_before = await balances(database, world.seller.id)

    rejected = await resolve(
        client, world, dispute["id"], {"decision": "reject", "reason": "The 5% starter rate applies."}
    )
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["resolution_reason"]) == (
        "rejected",
        "The 5% starter rate applies.",
    )
    assert (await resolve(client, world, dispute["id"], {"decision": "reject", "reason": "again"})).status_code == 409
    assert (await balances(database, world.seller.id))[1] == available_before
    assert await audit_actions(database, dispute["id"]) == ["dispute.opened", "dispute.rejected"]
    emails = await mail_jobs_to(database, "seller@example.com")
    assert len(emails) == 1 and "The 5% starter rate applies." in emails[0]["text"]
    evidence = await client.post(
        f"/affiliate/disputes/{dispute['id']}/evidence",
        files=[("files", ("late.txt", b"too late", "text/plain"))],
        headers=world.seller_headers,
    )
    assert evidence.status_code == 409
    reopened = await open_on_commission(client, world)  # a closed dispute does not block a new one
    assert reopened["id"] != dispute["id"]


# --- who may do what -----------------------------------------------------------------------------------


async def test_a_viewer_reads_the_queue_but_cannot_reply_or_resolve(client: httpx.AsyncClient, world: World) -> None:
    dispute = await open_on_commission(client, world)
    assert (await client.get("/admin/disputes", headers=world.viewer)).json()["total"] == 1
    resolved = await client.post(
        f"/admin/disputes/{dispute['id']}/resolve",
        json={"decision": "reject", "reason": "no"},
        headers=world.viewer,
    )
    assert resolved.status_code == 403
    replied = await client.post(
        f"/admin/disputes/{dispute['id']}/messages", json={"body": "hello"}, headers=world.viewer
    )
    assert replied.status_code == 403
    assert (await client.get("/admin/disputes", headers=world.seller_headers)).status_code == 401
    assert (await client.get("/admin/disputes")).status_code == 401


async def test_a_partner_never_reaches_another_partners_dispute(
    client: httpx.AsyncClient, database: Database, world: World
) -> None:
    dispute = await open_missing_conversion(client, world)
    path = f"/affiliate/disputes/{dispute['id']}"
    upload = await client.post(
        f"{path}/evidence",
        files=[("files", ("r.png", tiny_png(), "image/png"))],
        headers=world.seller_headers,
    )
    evidence_id = upload.json()[0]["id"]
    other = world.other_headers

    assert (await client.get("/affiliate/disputes", headers=other)).json()["total"] == 0
    assert (await client.get("/affiliate/disputes", headers=world.seller_headers)).json()["total"] == 1
    assert (await client.get(path, headers=other)).status_code == 404
    assert (await client.post(f"{path}/messages", json={"body": "hi"}, headers=other)).status_code == 404
    sneaky = await client.post(f"{path}/evidence", files=[("files", ("x.png", tiny_png(), "image/png"))], headers=other)
    assert sneaky.status_code == 404
    assert (await client.get(f"{path}/evidence/{evidence_id}", headers=other)).status_code == 404
    for anonymous in (
        await client.get(path),
        await client.get("/affiliate/disputes"),
        await client.post("/affiliate/disputes", json={"kind": "other", "commission_id": 1, "message": "m"}),
        await client.get(f"{path}/evidence/{evidence_id}"),
    ):
        assert anonymous.status_code == 401
    # Evidence of one dispute is not reachable through another dispute's id, even one's own.
    own_other = await open_on_commission(client, world)
    cross = await client.get(
        f"/affiliate/disputes/{own_other['id']}/evidence/{evidence_id}", headers=world.seller_headers
    )
    assert cross.status_code == 404
    detail = (await client.get(path, headers=world.seller_headers)).json()
    assert [m["body"] for m in detail["messages"]] == ["My referral bought credits but nothing was tracked."]
