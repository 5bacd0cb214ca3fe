from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.db.types import utcnow
from partners.events.models import Purchase
from partners.programs.models import Program, Tier
from partners.settings import Settings
from partners.tracking.models import Click, Customer, TrackingLink
from tests.factories import create_partner, partner_headers

Programme = tuple[Program, dict[str, Tier]]


async def chain(session: AsyncSession, program: Programme, length: int) -> list[Partner]:
    """A chain of partners, each recruited by the one before: [root, level 1, level 2, ...]."""
    partners: list[Partner] = []
    for index in range(length):
        parent = partners[-1] if partners else None
        partners.append(await create_partner(session, program[0], program[1]["pro"], parent=parent, name=f"P{index}"))
    return partners


async def clicks(session: AsyncSession, partner: Partner, humans: int, bots: int) -> None:
    link = TrackingLink(partner_id=partner.id, code=f"link-{partner.id}", destination_url="https://namaskah.app/")
    session.add(link)
    await session.flush()
    for index in range(humans + bots):
        session.add(
            Click(
                click_id=f"c{partner.id}-{index}",
                link_id=link.id,
                partner_id=partner.id,
                occurred_at=utcnow(),
                ip_hash="x",
                is_bot=index >= humans,
            )
        )


async def purchase(
    session: AsyncSession, partner: Partner, amount: int, currency: str, *, refunded: int = 0
) -> Purchase:
    customer = Customer(external_id=f"cust-{partner.id}-{amount}-{currency}", partner_id=partner.id)
    session.add(customer)
    await session.flush()
    bought = Purchase(
        external_id=f"buy-{customer.external_id}",
        customer_id=customer.id,
        partner_id=partner.id,
        amount=amount,
        currency=currency,
        product="sms",
        occurred_at=utcnow(),
        refunded_amount=refunded,
    )
    session.add(bought)
    await session.flush()
    return bought


async def commission(
    session: AsyncSession,
    bought: Purchase,
    earner: Partner,
    level: int,
    amount: int,
    reversed_amount: int = 0,
) -> None:
    session.add(
        Commission(
            purchase_id=bought.id,
            partner_id=earner.id,
            level=level,
            currency=bought.currency,
            base_amount=bought.amount,
            rate_bps=100,
            amount=amount,
            reversed_amount=reversed_amount,
            payable_at=utcnow(),
        )
    )


def summary(node: dict[str, Any]) -> tuple[Any, ...]:
    return (node["name"], node["level"], [summary(child) for child in node["children"]])


async def test_referrals_show_three_levels_with_performance(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        root, first, second, third, fourth = await chain(session, program, 5)
        sibling = await create_partner(session, program[0], program[1]["pro"], parent=root, name="Sibling")
        await clicks(session, first, humans=2, bots=1)
        usd = await purchase(session, first, 10_000, "USD", refunded=2_500)
        eur = await purchase(session, first, 5_000, "EUR")
        await commission(session, usd, first, 1, 1_500, 375)
        await commission(session, usd, root, 2, 200, 50)
        await commission(session, eur, root, 2, 100)
        deeper = await purchase(session, second, 20_000, "USD")
        await commission(session, deeper, second, 1, 3_000)
        await commission(session, deeper, first, 2, 400)
        await commission(session, deeper, root, 3, 200)
        deepest = await purchase(session, third, 1_000, "USD")
        await commission(session, deepest, second, 2, 20)
        root_headers = await partner_headers(session, settings, root)
        first_headers = await partner_headers(session, settings, first)

    response = await client.get("/affiliate/referrals", headers=root_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["depth"] == 3
    assert [summary(node) for node in body["referrals"]] == [
        ("P1", 1, [("P2", 2, [("P3", 3, [])])]),  # P4 is a fourth level: not shown
        ("Sibling", 1, []),
    ]
    level1 = body["referrals"][0]
    assert (level1["id"], level1["clicks"], level1["customers"], level1["tier"]) == (
        first.id,
        2,
        2,
        "Professional",
    )
    assert level1["revenue_referred"] == [
        {"currency": "EUR", "amount": 5_000},
        {"currency": "USD", "amount": 7_500},
    ]
    assert level1["commissions_earned"] == [
        {"currency": "EUR", "amount": 100},
        {"currency": "USD", "amount": 150},
    ]
    level2 = level1["children"][0]
    assert (level2["clicks"], level2["customers"]) == (0, 1)
    assert level2["revenue_referred"] == [{"currency": "USD", "amount": 20_000}]
    assert level2["commissions_earned"] == [{"currency": "USD", "amount": 200}]
    level3 = level2["children"][0]
    assert level3["revenue_referred"] == [{"currency": "USD", "amount": 1_000}]
    assert level3["commissions_earned"] == []  # three levels are paid: the root earns nothing from a 4th
    assert body["referrals"][1]["id"] == sibling.id

    mine = (await client.get("/affiliate/referrals", headers=first_headers)).json()
    assert [summary(node) for node in mine["referrals"]] == [("P2", 1, [("P3", 2, [("P4", 3, [])])])]
    assert mine["referrals"][0]["commissions_earned"] == [{"currency": "USD", "amount": 400}]
    assert fourth.id == mine["referrals"][0]["children"][0]["children"][0]["id"]


async def test_a_partner_cannot_read_another_partners_referrals(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        root, _child = await chain(session, program, 2)
        stranger = await create_partner(session, program[0], program[1]["pro"])
        stranger_headers = await partner_headers(session, settings, stranger)
    response = await client.get("/affiliate/referrals", headers=stranger_headers)
    assert response.json() == {"depth": 3, "referrals": []}
    for attempt in (f"/affiliate/referrals?partner_id={root.id}", f"/affiliate/referrals/{root.id}"):
        sneaky = await client.get(attempt, headers=stranger_headers)
        assert sneaky.status_code == 404 or sneaky.json()["referrals"] == []
    assert (await client.get("/affiliate/referrals")).status_code == 401
