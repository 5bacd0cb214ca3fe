"""The host events API: happy paths, idempotent replays, conflicts, bad input and authentication."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.commissions.models import Commission
from partners.db.session import Database
from partners.events.models import HostEvent, Purchase, Refund
from partners.ledger.models import LedgerEntry, LedgerTransaction
from partners.programs.models import Program
from partners.settings import Settings
from partners.tracking.models import Customer
from tests.events.support import Chain, count, make_chain, problem_fields
from tests.factories import host_headers, partner_headers


@pytest.fixture
async def chain(database: Database, settings: Settings) -> Chain:
    return await make_chain(database, settings)


async def signup(client: httpx.AsyncClient, chain: Chain, customer: str = "cust-1", **fields: Any) -> httpx.Response:
    body = {"external_id": customer, "email": f"{customer}@example.org", "referral_code": "cyd"} | fields
    return await client.post("/events/signup", json=body, headers=chain.host)


async def purchase(
    client: httpx.AsyncClient, chain: Chain, external_id: str = "pay-1", **fields: Any
) -> httpx.Response:
    body = {
        "external_id": external_id,
        "customer": "cust-1",
        "amount": 10_000,
        "currency": "USD",
        "product": "sms",
    }
    return await client.post("/events/purchase", json=body | fields, headers=chain.host)


async def refund(client: httpx.AsyncClient, chain: Chain, external_id: str = "ref-1", **fields: Any) -> httpx.Response:
    body = {"external_id": external_id, "purchase_id": "pay-1", "amount": 2_500} | fields
    return await client.post("/events/refund", json=body, headers=chain.host)


async def chargeback(
    client: httpx.AsyncClient, chain: Chain, external_id: str = "cb-1", **fields: Any
) -> httpx.Response:
    body = {"external_id": external_id, "purchase_id": "pay-1", "reason": "fraud"} | fields
    return await client.post("/events/chargeback", json=body, headers=chain.host)


async def money_rows(database: Database) -> tuple[int, ...]:
    return tuple(
        [await count(database, model) for model in (Purchase, Refund, Commission, LedgerTransaction, LedgerEntry)]
    )


# --- signup --------------------------------------------------------------------------------------------


async def test_signup_attributes_the_customer_and_replays(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    first = await signup(client, chain)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["partner"] == "cyd"
    assert body["attributed_via"] == "referral_code"
    assert body["welcome_reward"] is None
    assert body["external_id"] == "cust-1"

    replay = await signup(client, chain)
    assert replay.status_code == 201
    assert replay.json() == body
    assert await count(database, Customer) == 1
    assert await count(database, HostEvent) == 1

    changed = await signup(client, chain, email="someone-else@example.org")
    assert changed.status_code == 409
    assert problem_fields(changed) == ["external_id"]


async def test_signup_without_attribution_has_no_partner(client: httpx.AsyncClient, chain: Chain) -> None:
    response = await signup(client, chain, referral_code="nobody")
    assert response.status_code == 201, response.text
    assert response.json()["partner"] is None
    assert response.json()["attributed_via"] is None


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (
            "credits",
            500,
            {"kind": "credits", "value": 500, "currency": "USD", "apply_now": True, "applies_to": "account"},
        ),
        (
            "discount_percent",
            1_000,
            {
                "kind": "discount_percent",
                "value": 1_000,
                "currency": None,
                "apply_now": False,
                "applies_to": "first_purchase",
            },
        ),
    ],
)
async def test_welcome_reward_is_given_once_to_a_referred_customer(
    client: httpx.AsyncClient,
    database: Database,
    chain: Chain,
    kind: str,
    value: int,
    expected: dict[str, Any],
) -> None:
    async with database.write() as session:
        await session.execute(
            sa.update(Program)
            .where(Program.id == chain.program.id)
            .values(welcome_reward_kind=kind, welcome_reward_value=value)
        )
    referred = await signup(client, chain, "cust-1")
    assert referred.json()["welcome_reward"] == expected
    assert (await signup(client, chain, "cust-1")).json()["welcome_reward"] == expected  # the stored answer
    unreferred = await signup(client, chain, "cust-2", referral_code=None)
    assert unreferred.json()["welcome_reward"] is None
    async with database.read() as session:
        given = dict((await session.execute(sa.select(Customer.external_id, Customer.welcome_reward_given_at))).all())
    assert given["cust-1"] is not None
    assert given["cust-2"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": "", "email": "a@example.org"}, "external_id"),
        ({"email": "a@example.org"}, "external_id"),
        ({"external_id": "c", "email": "not-an-email"}, "email"),
        ({"external_id": "c", "email": "a@example.org", "occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ({"external_id": "c", "email": "a@example.org", "surprise": 1}, "surprise"),
    ],
)
async def test_signup_bad_input_names_the_field(
    client: httpx.AsyncClient, chain: Chain, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/events/signup", json=body, headers=chain.host)
    assert response.status_code == 422
    assert field in problem_fields(response)


# --- purchase ------------------------------------------------------------------------------------------


async def test_purchase_pays_three_levels_in_one_transaction_and_replays(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await signup(client, chain)
    before = await money_rows(database)
    response = await purchase(client, chain, amount=12_345, currency="usd")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["partner"] == "cyd"
    assert body["currency"] == "USD"
    assert body["first_purchase"] is True
    # Starter: 5% level 1, 2% level 2, 1% level 3, each round-half-even(amount x rate).
    assert body["commissions"] == [
        {"partner": "cyd", "level": 1, "amount": 617, "currency": "USD", "status": "pending"},  # 617.25
        {"partner": "ben", "level": 2, "amount": 247, "currency": "USD", "status": "pending"},  # 246.9
        {"partner": "ada", "level": 3, "amount": 123, "currency": "USD", "status": "pending"},  # 123.45
    ]
    after = await money_rows(database)
    assert after[0] == before[0] + 1  # one purchase
    assert after[2] == before[2] + 3  # three commissions
    assert after[3] == before[3] + 1  # one ledger transaction

    replay = await purchase(client, chain, amount=12_345, currency="usd")
    assert replay.status_code == 201
    assert replay.json() == body
    assert await money_rows(database) == after

    changed = await purchase(client, chain, amount=12_346)
    assert changed.status_code == 409
    assert problem_fields(changed) == ["external_id"]
    assert await money_rows(database) == after

    second = await purchase(client, chain, "pay-2", amount=100)
    assert second.json()["first_purchase"] is False


async def test_purchase_by_an_unattributed_customer_has_no_commissions(client: httpx.AsyncClient, chain: Chain) -> None:
    await signup(client, chain, referral_code=None)
    response = await purchase(client, chain)
    assert response.status_code == 201
    assert response.json()["partner"] is None
    assert response.json()["commissions"] == []


async def test_purchase_by_an_unknown_customer_is_404_and_can_be_retried(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    missing = await purchase(client, chain, customer="ghost")
    assert missing.status_code == 404
    assert problem_fields(missing) == ["customer"]
    assert await count(database, HostEvent) == 0  # errors are not remembered
    await signup(client, chain, "ghost")
    retried = await purchase(client, chain, customer="ghost")
    assert retried.status_code == 201


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"product": "pizza"}, "product"),
        ({"customer": None}, "customer"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
    ],
)
async def test_purchase_bad_input_names_the_field(
    client: httpx.AsyncClient, database: Database, chain: Chain, changes: dict[str, Any], field: str
) -> None:
    await signup(client, chain)
    body = {"external_id": "pay-1", "customer": "cust-1", "amount": 100, "currency": "USD", "product": "sms"}
    body = {key: value for key, value in (body | changes).items() if value is not None}
    response = await client.post("/events/purchase", json=body, headers=chain.host)
    assert response.status_code == 422, response.text
    assert field in problem_fields(response)
    assert await count(database, Purchase) == 0


def purchase_body(external_id: str, customer: str = "cust-1", amount: int = 10_000) -> dict[str, Any]:
    return {"external_id": external_id, "customer": customer, "amount": amount, "currency": "USD", "product": "sms"}


async def test_purchases_in_one_request_each_answered_as_alone(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await signup(client, chain)
    await signup(client, chain, "cust-2")
    events = [purchase_body("pay-1", amount=12_345), purchase_body("pay-2", "ghost"), purchase_body("pay-3", "cust-2")]
    before = await money_rows(database)
    response = await client.post("/events/purchases", json={"events": events}, headers=chain.host)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["external_id"], r["status"]) for r in results] == [("pay-1", 201), ("pay-2", 404), ("pay-3", 201)]
    assert [c["amount"] for c in results[0]["purchase"]["commissions"]] == [617, 247, 123]
    assert results[0]["purchase"]["first_purchase"] is True
    assert results[1]["purchase"] is None
    assert results[1]["problem"]["status"] == 404
    assert [error["field"] for error in results[1]["problem"]["errors"]] == ["events.1.customer"]
    after = await money_rows(database)
    assert after[0] == before[0] + 2 and after[2] == before[2] + 6 and after[3] == before[3] + 2

    alone = await purchase(client, chain, amount=12_345)  # the same event sent alone: its stored answer
    assert alone.status_code == 201
    assert alone.json() == results[0]["purchase"]
    await signup(client, chain, "ghost")
    again = await client.post("/events/purchases", json={"events": events}, headers=chain.host)
    assert [r["status"] for r in again.json()["results"]] == [201, 201, 201]
    assert again.json()["results"][0] == results[0]
    assert again.json()["results"][2] == results[2]
    assert await money_rows(database) == (after[0] + 1, after[1], after[2] + 3, after[3] + 1, after[4] + 4)


async def test_purchases_repeating_an_external_id_record_it_once(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await signup(client, chain)
    same = [purchase_body("pay-1"), purchase_body("pay-1")]
    response = await client.post("/events/purchases", json={"events": same}, headers=chain.host)
    first, second = response.json()["results"]
    assert first["status"] == second["status"] == 201
    assert first == second
    changed = [purchase_body("pay-2"), purchase_body("pay-2", amount=1)]
    response = await client.post("/events/purchases", json={"events": changed}, headers=chain.host)
    statuses = sorted(result["status"] for result in response.json()["results"])
    assert statuses == [201, 409]
    assert await count(database, Purchase) == 2
    assert await count(database, Commission) == 6


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([purchase_body("pay-1"), purchase_body("pay-2", amount=0)], "events.1.amount"),
        ([purchase_body("pay-1"), {"external_id": "pay-2"}], "events.1.customer"),
        ([], "events"),
        ([purchase_body(f"pay-{n}") for n in range(101)], "events"),
    ],
)
async def test_purchases_bad_input_anywhere_records_nothing(
    client: httpx.AsyncClient, database: Database, chain: Chain, events: list[dict[str, Any]], field: str
) -> None:
    await signup(client, chain)
    response = await client.post("/events/purchases", json={"events": events}, headers=chain.host)
    assert response.status_code == 422, response.text
    assert field in problem_fields(response)
    assert await count(database, Purchase) == 0
    assert await count(database, HostEvent) == 1  # the signup


async def test_every_product_is_accepted(client: httpx.AsyncClient, chain: Chain) -> None:
    await signup(client, chain)
    for index, product in enumerate(("sms", "whatsapp", "voice", "rental", "subscription", "credits")):
        response = await purchase(client, chain, f"pay-{index}", product=product, amount=100)
        assert response.status_code == 201, (product, response.text)


# --- refund --------------------------------------------------------------------------------------------


async def test_partial_refund_reverses_pro_rata_and_replays(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await signup(client, chain)
    await purchase(client, chain, amount=12_345)
    response = await refund(client, chain, amount=5_000)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "refund"
    assert body["refunded_total"] == 5_000
    assert body["purchase_status"] == "partially_refunded"
    # reversed = round-half-even(commission x 5000 / 12345)
    assert [(c["partner"], c["reversed_now"], c["reversed_total"]) for c in body["commissions"]] == [
        ("cyd", 250, 250),  # 617 x 5000 / 12345 = 249.899
        ("ben", 100, 100),  # 247 x 5000 / 12345 = 100.041
        ("ada", 50, 50),  # 123 x 5000 / 12345 = 49.818
    ]
    rows = await money_rows(database)
    replay = await refund(client, chain, amount=5_000)
    assert (replay.status_code, replay.json()) == (201, body)
    assert await money_rows(database) == rows

    changed = await refund(client, chain, amount=5_001)
    assert changed.status_code == 409
    assert problem_fields(changed) == ["external_id"]

    rest = await refund(client, chain, "ref-2", amount=7_345)
    assert rest.json()["purchase_status"] == "refunded"
    assert [c["reversed_total"] for c in rest.json()["commissions"]] == [617, 247, 123]
    assert [c["status"] for c in rest.json()["commissions"]] == ["reversed"] * 3


async def test_refund_of_an_unknown_purchase_is_404(client: httpx.AsyncClient, chain: Chain) -> None:
    response = await refund(client, chain, purchase_id="nope")
    assert response.status_code == 404
    assert problem_fields(response) == ["purchase_id"]
    assert "nope" in response.json()["detail"]


async def test_refund_above_what_is_left_is_422(client: httpx.AsyncClient, database: Database, chain: Chain) -> None:
    await signup(client, chain)
    await purchase(client, chain, amount=10_000)
    assert (await refund(client, chain, amount=6_000)).status_code == 201
    rows = await money_rows(database)
    too_much = await refund(client, chain, "ref-2", amount=4_001)
    assert too_much.status_code == 422
    assert problem_fields(too_much) == ["amount"]
    assert await money_rows(database) == rows
    assert (await refund(client, chain, "ref-2", amount=4_000)).status_code == 201


@pytest.mark.parametrize(("changes", "field"), [({"amount": 0}, "amount"), ({"purchase_id": ""}, "purchase_id")])
async def test_refund_bad_input_names_the_field(
    client: httpx.AsyncClient, chain: Chain, changes: dict[str, Any], field: str
) -> None:
    response = await refund(client, chain, **changes)
    assert response.status_code == 422
    assert problem_fields(response) == [field]


async def test_a_refund_id_cannot_be_reused_for_a_chargeback(client: httpx.AsyncClient, chain: Chain) -> None:
    await signup(client, chain)
    await purchase(client, chain)
    await refund(client, chain, "evt-1", amount=100)
    reused = await chargeback(client, chain, "evt-1")
    assert reused.status_code == 409
    assert problem_fields(reused) == ["external_id"]


# --- chargeback ----------------------------------------------------------------------------------------


async def test_chargeback_reverses_all_that_is_left_and_replays(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await signup(client, chain)
    await purchase(client, chain, amount=10_000)  # commissions 500, 200, 100
    await refund(client, chain, amount=2_500)  # reverses 125, 50, 25
    response = await chargeback(client, chain)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["kind"], body["amount"], body["refunded_total"]) == ("chargeback", 7_500, 10_000)
    assert body["purchase_status"] == "charged_back"
    assert [(c["reversed_now"], c["reversed_total"], c["status"]) for c in body["commissions"]] == [
        (375, 500, "reversed"),
        (150, 200, "reversed"),
        (75, 100, "reversed"),
    ]
    rows = await money_rows(database)
    replay = await chargeback(client, chain)
    assert (replay.status_code, replay.json()) == (201, body)
    assert await money_rows(database) == rows

    changed = await chargeback(client, chain, reason="other")
    assert changed.status_code == 409
    assert problem_fields(changed) == ["external_id"]

    nothing_left = await chargeback(client, chain, "cb-2")
    assert nothing_left.status_code == 422
    assert problem_fields(nothing_left) == ["purchase_id"]


async def test_chargeback_of_an_unknown_purchase_is_404(client: httpx.AsyncClient, chain: Chain) -> None:
    response = await chargeback(client, chain, purchase_id="nope")
    assert response.status_code == 404
    assert problem_fields(response) == ["purchase_id"]


# --- authentication ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/events/signup", "/events/purchase", "/events/purchases", "/events/refund", "/events/chargeback"]
)
async def test_events_need_a_host_key_with_the_events_scope(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain, path: str
) -> None:
    async with database.write() as session:
        reader = await host_headers(session, settings, "partners:read")
        partner = await partner_headers(session, settings, chain.cyd)
    body = {"external_id": "x"}
    missing = await client.post(path, json=body)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.post(path, json=body, headers={"X-API-Key": "npk_bogus"})).status_code == 401
    assert (await client.post(path, json=body, headers=partner)).status_code == 401
    wrong_scope = await client.post(path, json=body, headers=reader)
    assert wrong_scope.status_code == 403
    assert wrong_scope.headers["content-type"] == "application/problem+json"


# --- concurrency ---------------------------------------------------------------------------------------


async def test_concurrent_duplicates_apply_once(client: httpx.AsyncClient, database: Database, chain: Chain) -> None:
    await signup(client, chain)
    responses = await asyncio.gather(*[purchase(client, chain, amount=4_000) for _ in range(4)])
    assert {response.status_code for response in responses} == {201}
    assert len({response.text for response in responses}) == 1
    assert await count(database, Purchase) == 1
    assert await count(database, Commission) == 3


async def test_concurrent_refunds_never_refund_more_than_the_purchase(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await signup(client, chain)
    await purchase(client, chain, amount=10_000)
    responses = await asyncio.gather(*[refund(client, chain, f"ref-{n}", amount=4_000) for n in range(3)])
    assert sorted(response.status_code for response in responses) == [201, 201, 422]
    async with database.read() as session:
        refunded = await session.scalar(sa.select(Purchase.refunded_amount))
    assert refunded == 8_000
