"""THE scenario of issue 3: a 3-level chain through a click, a signup, purchases in two currencies, partial
and full refunds, approval after the hold, and a clawback after approval that a later approval pays back.

ada recruited ben, ben recruited cyd; the customer clicks cyd's link. Every partner is in the Starter tier
(programs/defaults.py): level 1 earns 5% (500 bps), level 2 2% (200 bps), level 3 1% (100 bps); the hold is
30 days. The month's referred revenue stays far below the first bonus step (1,000.00), so level 1 stays 5%.

Every expected number is worked out below by hand with the DESIGN.md rules, using `rhe` — round half to
even with Python's Decimal, independent of the code under test:
- a level's commission = rhe(amount x rate / 10000);
- after refunds totalling R of a sale A, a commission C is reversed by rhe(C x R / A) (exactly C once R = A);
  one refund reverses the difference between the totals after and before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from partners.commissions import accounts
from partners.commissions import service as commissions
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.db.types import utcnow
from partners.events.models import Purchase
from partners.ledger import service as ledger
from partners.ledger.models import LedgerEntry
from partners.settings import Settings
from partners.tracking import service as tracking
from partners.tracking.recorder import ClickRecorder
from partners.tracking.schemas import LinkCreate
from tests.events.support import Chain, commission_expense, earnings, make_chain

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
BPS = 10_000
L1, L2, L3 = 500, 200, 100  # Starter: 5%, 2%, 1%


def rhe(numerator: int, denominator: int) -> int:
    """round-half-even(numerator / denominator)."""
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# Purchase 1: 123.45 USD
P1 = 12_345
P1_CYD = rhe(P1 * L1, BPS)  # 617.25 -> 617
P1_BEN = rhe(P1 * L2, BPS)  # 246.90 -> 247
P1_ADA = rhe(P1 * L3, BPS)  # 123.45 -> 123
# Purchase 2: 99.90 EUR
P2 = 9_990
P2_CYD = rhe(P2 * L1, BPS)  # 499.5 -> 500 (half goes to the even neighbour)
P2_BEN = rhe(P2 * L2, BPS)  # 199.8 -> 200
P2_ADA = rhe(P2 * L3, BPS)  # 99.9 -> 100
# Purchase 3: 20.50 USD
P3 = 2_050
P3_CYD = rhe(P3 * L1, BPS)  # 102.5 -> 102 (half goes to the even neighbour)
P3_BEN = rhe(P3 * L2, BPS)  # 41.0 -> 41
P3_ADA = rhe(P3 * L3, BPS)  # 20.5 -> 20

# Refund 1: 50.00 of purchase 1 (partial)
R1 = 5_000
R1_CYD = rhe(P1_CYD * R1, P1)  # 617 x 5000 / 12345 = 249.90 -> 250
R1_BEN = rhe(P1_BEN * R1, P1)  # 247 x 5000 / 12345 = 100.04 -> 100
R1_ADA = rhe(P1_ADA * R1, P1)  # 123 x 5000 / 12345 = 49.82 -> 50
# Refund 2: 23.45 more of purchase 1 (partial, 73.45 in all)
R2 = 2_345
R12_CYD = rhe(P1_CYD * (R1 + R2), P1)  # 617 x 7345 / 12345 = 367.10 -> 367 in all
R12_BEN = rhe(P1_BEN * (R1 + R2), P1)  # 247 x 7345 / 12345 = 146.96 -> 147 in all
R12_ADA = rhe(P1_ADA * (R1 + R2), P1)  # 123 x 7345 / 12345 = 73.18 -> 73 in all
# Refund 3: all of purchase 2 (full): every EUR commission is reversed whole.

# What is left of each partner's USD commissions (pending until approval, then available)
CYD_USD = P1_CYD - R12_CYD + P3_CYD  # 617 - 367 + 102 = 352
BEN_USD = P1_BEN - R12_BEN + P3_BEN  # 247 - 147 + 41 = 141
ADA_USD = P1_ADA - R12_ADA + P3_ADA  # 123 - 73 + 20 = 70


def test_the_hand_arithmetic() -> None:
    """The numbers above, as a reader checks them with a pencil."""
    assert (P1_CYD, P1_BEN, P1_ADA) == (617, 247, 123)
    assert (P2_CYD, P2_BEN, P2_ADA) == (500, 200, 100)
    assert (P3_CYD, P3_BEN, P3_ADA) == (102, 41, 20)
    assert (R1_CYD, R1_BEN, R1_ADA) == (250, 100, 50)
    assert (R12_CYD, R12_BEN, R12_ADA) == (367, 147, 73)
    assert (CYD_USD, BEN_USD, ADA_USD) == (352, 141, 70)


@pytest.fixture
async def chain(database: Database, settings: Settings) -> Chain:
    return await make_chain(database, settings)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"User-Agent": BROWSER}
    ) as http:
        yield http


async def click_through(app: Any, database: Database, browser: httpx.AsyncClient, chain: Chain) -> str:
    """cyd's link, clicked in a browser through the real redirect; the recorder's batch flushed."""
    async with database.write() as session:
        link = await tracking.create_link(
            session, partner_id=chain.cyd.id, data=LinkCreate(destination_url="https://namaskah.app/signup")
        )
    response = await browser.get(f"/r/{link.code}")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["ref"] == ["cyd"]
    recorder: ClickRecorder = app.state.click_recorder
    assert await recorder.flush() == 1
    return query["click_id"][0]


async def post(client: httpx.AsyncClient, chain: Chain, kind: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/events/{kind}", json=body, headers=chain.host)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def levels(answer: dict[str, Any], key: str = "amount") -> dict[str, int]:
    return {commission["partner"]: commission[key] for commission in answer["commissions"]}


async def approve_due(database: Database, days_from_now: int) -> int:
    async with database.write() as session:
        return await commissions.approve_due_commissions(session, now=utcnow() + timedelta(days=days_from_now))


async def commission_rows(database: Database, purchase_external_id: str) -> list[tuple[str, int, int, int, str]]:
    async with database.read() as session:
        rows = await session.execute(
            sa.select(
                Commission.partner_id,
                Commission.level,
                Commission.amount,
                Commission.reversed_amount,
                Commission.status,
            )
            .join(Purchase, Purchase.id == Commission.purchase_id)
            .where(Purchase.external_id == purchase_external_id)
            .order_by(Commission.level)
        )
        return [
            (str(partner_id), level, amount, reversed_, status)
            for partner_id, level, amount, reversed_, status in rows.all()
        ]


async def assert_balances(
    database: Database, chain: Chain, currency: str, expected: dict[str, tuple[int, int]]
) -> None:
    """expected: partner name -> (earnings_pending, earnings_available)."""
    for name, balances in expected.items():
        assert await earnings(database, getattr(chain, name), currency) == balances, (name, currency)


async def assert_journal_balanced(database: Database) -> None:
    async with database.read() as session:
        sums = (
            await session.execute(
                sa.select(LedgerEntry.currency, sa.func.sum(LedgerEntry.amount)).group_by(LedgerEntry.currency)
            )
        ).all()
    assert all(total == 0 for _currency, total in sums), sums


async def test_click_signup_purchases_refunds_and_approval_to_the_cent(
    app: Any, client: httpx.AsyncClient, browser: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    click_id = await click_through(app, database, browser, chain)

    signed_up = await post(client, chain, "signup", external_id="cust-1", email="c1@example.org", click_id=click_id)
    assert (signed_up["partner"], signed_up["attributed_via"]) == ("cyd", "click")

    p1 = await post(
        client,
        chain,
        "purchase",
        external_id="p1",
        customer="cust-1",
        amount=P1,
        currency="USD",
        product="sms",
    )
    assert levels(p1) == {"cyd": P1_CYD, "ben": P1_BEN, "ada": P1_ADA}
    assert [c["level"] for c in p1["commissions"]] == [1, 2, 3]
    p2 = await post(
        client,
        chain,
        "purchase",
        external_id="p2",
        customer="cust-1",
        amount=P2,
        currency="EUR",
        product="whatsapp",
    )
    assert levels(p2) == {"cyd": P2_CYD, "ben": P2_BEN, "ada": P2_ADA}
    p3 = await post(
        client,
        chain,
        "purchase",
        external_id="p3",
        customer="cust-1",
        amount=P3,
        currency="USD",
        product="voice",
    )
    assert levels(p3) == {"cyd": P3_CYD, "ben": P3_BEN, "ada": P3_ADA}

    await assert_balances(
        database,
        chain,
        "USD",
        {
            "cyd": (P1_CYD + P3_CYD, 0),
            "ben": (P1_BEN + P3_BEN, 0),
            "ada": (P1_ADA + P3_ADA, 0),
        },
    )
    await assert_balances(database, chain, "EUR", {"cyd": (P2_CYD, 0), "ben": (P2_BEN, 0), "ada": (P2_ADA, 0)})
    assert await commission_expense(database, "USD") == -(P1_CYD + P1_BEN + P1_ADA + P3_CYD + P3_BEN + P3_ADA)
    assert await commission_expense(database, "EUR") == -(P2_CYD + P2_BEN + P2_ADA)

    r1 = await post(client, chain, "refund", external_id="r1", purchase_id="p1", amount=R1)
    assert levels(r1, "reversed_now") == {"cyd": R1_CYD, "ben": R1_BEN, "ada": R1_ADA}
    r2 = await post(client, chain, "refund", external_id="r2", purchase_id="p1", amount=R2)
    assert levels(r2, "reversed_now") == {
        "cyd": R12_CYD - R1_CYD,
        "ben": R12_BEN - R1_BEN,
        "ada": R12_ADA - R1_ADA,
    }
    assert levels(r2, "reversed_total") == {"cyd": R12_CYD, "ben": R12_BEN, "ada": R12_ADA}
    assert r2["purchase_status"] == "partially_refunded"
    r3 = await post(client, chain, "refund", external_id="r3", purchase_id="p2", amount=P2)
    assert levels(r3, "reversed_now") == {"cyd": P2_CYD, "ben": P2_BEN, "ada": P2_ADA}
    assert {c["status"] for c in r3["commissions"]} == {"reversed"}
    assert r3["purchase_status"] == "refunded"

    await assert_balances(database, chain, "USD", {"cyd": (CYD_USD, 0), "ben": (BEN_USD, 0), "ada": (ADA_USD, 0)})
    await assert_balances(database, chain, "EUR", {"cyd": (0, 0), "ben": (0, 0), "ada": (0, 0)})
    assert await commission_expense(database, "USD") == -(CYD_USD + BEN_USD + ADA_USD)  # -563
    assert await commission_expense(database, "EUR") == 0

    assert await approve_due(database, 29) == 0  # still inside the 30-day hold
    assert await approve_due(database, 31) == 6  # p1 and p3 at three levels; p2's are reversed
    assert await approve_due(database, 31) == 0

    await assert_balances(database, chain, "USD", {"cyd": (0, CYD_USD), "ben": (0, BEN_USD), "ada": (0, ADA_USD)})
    await assert_balances(database, chain, "EUR", {"cyd": (0, 0), "ben": (0, 0), "ada": (0, 0)})
    assert await commission_expense(database, "USD") == -563
    ids = {str(chain.cyd.id): "cyd", str(chain.ben.id): "ben", str(chain.ada.id): "ada"}
    p1_rows = [
        (ids[p], level, amount, reversed_, status)
        for p, level, amount, reversed_, status in await commission_rows(database, "p1")
    ]
    assert p1_rows == [
        ("cyd", 1, P1_CYD, R12_CYD, "approved"),
        ("ben", 2, P1_BEN, R12_BEN, "approved"),
        ("ada", 3, P1_ADA, R12_ADA, "approved"),
    ]
    p2_rows = [(ids[p], status) for p, _level, _amount, _reversed, status in await commission_rows(database, "p2")]
    assert p2_rows == [("cyd", "reversed"), ("ben", "reversed"), ("ada", "reversed")]
    await assert_journal_balanced(database)


async def test_a_refund_after_approval_claws_back_and_the_next_approval_repays(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    await post(client, chain, "signup", external_id="cust-1", email="c1@example.org", referral_code="cyd")
    await post(
        client,
        chain,
        "purchase",
        external_id="p1",
        customer="cust-1",
        amount=P1,
        currency="USD",
        product="sms",
    )
    await post(client, chain, "refund", external_id="r1", purchase_id="p1", amount=R1)
    assert await approve_due(database, 31) == 3
    left_cyd, left_ben, left_ada = P1_CYD - R1_CYD, P1_BEN - R1_BEN, P1_ADA - R1_ADA  # 367, 147, 73
    await assert_balances(database, chain, "USD", {"cyd": (0, left_cyd), "ben": (0, left_ben), "ada": (0, left_ada)})

    # cyd is paid out everything available (what the payouts issue will do: the money leaves the account).
    async with database.write() as session:
        available = await accounts.earnings_available_account(session, chain.cyd.id, "USD")
        paid = await ledger.open_account(
            session, owner="platform", kind="test_payouts_sent", currency="USD", may_go_negative=True
        )
        await ledger.transfer(
            session,
            idempotency_key="test-payout-1",
            kind="test_payout",
            source=available,
            destination=paid,
            amount=left_cyd,
        )
    await assert_balances(database, chain, "USD", {"cyd": (0, 0)})

    # The customer is refunded the rest: the approved commissions are reversed whole, from earnings_available.
    rest = await post(client, chain, "refund", external_id="r2", purchase_id="p1", amount=P1 - R1)
    assert levels(rest, "reversed_now") == {
        "cyd": P1_CYD - R1_CYD,
        "ben": P1_BEN - R1_BEN,
        "ada": P1_ADA - R1_ADA,
    }
    assert {c["status"] for c in rest["commissions"]} == {"reversed"}
    await assert_balances(database, chain, "USD", {"cyd": (0, -left_cyd), "ben": (0, 0), "ada": (0, 0)})  # -367
    assert await commission_expense(database, "USD") == 0  # p1 is wholly reversed; cyd owes what it was paid

    # A new sale: pending first, then its approval pays the debt back before anything becomes available.
    amount = 8_000
    p4 = await post(
        client,
        chain,
        "purchase",
        external_id="p4",
        customer="cust-1",
        amount=amount,
        currency="USD",
        product="rental",
    )
    p4_cyd, p4_ben, p4_ada = (
        rhe(amount * L1, BPS),
        rhe(amount * L2, BPS),
        rhe(amount * L3, BPS),
    )  # 400, 160, 80
    assert levels(p4) == {"cyd": p4_cyd, "ben": p4_ben, "ada": p4_ada}
    await assert_balances(database, chain, "USD", {"cyd": (p4_cyd, -left_cyd), "ben": (p4_ben, 0), "ada": (p4_ada, 0)})
    assert await approve_due(database, 62) == 3
    await assert_balances(
        database,
        chain,
        "USD",
        {
            "cyd": (0, p4_cyd - left_cyd),  # 400 - 367 = 33
            "ben": (0, p4_ben),
            "ada": (0, p4_ada),
        },
    )
    assert await commission_expense(database, "USD") == -(p4_cyd + p4_ben + p4_ada)  # -640
    await assert_journal_balanced(database)
