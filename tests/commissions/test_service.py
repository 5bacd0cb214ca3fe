"""Commission creation, refunds, approval and clawbacks, with exact cents in commissions and the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from partners.affiliates.models import AgreementAcceptance, AgreementVersion, Partner
from partners.audit.service import Actor
from partners.commissions import service
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.events.models import Purchase
from partners.ledger.models import LedgerEntry, LedgerTransaction
from partners.programs.models import Program, Tier
from partners.settings import Settings
from partners.tracking.models import Customer
from tests.commissions.support import T0, balances, expense, make_customer, make_purchase
from tests.factories import create_partner, create_program

DAY = timedelta(days=1)
STAFF = Actor("staff", "7")


@dataclass
class Chain:
    program: Program
    tiers: dict[str, Tier]
    top: Partner  # level 3
    middle: Partner  # level 2
    seller: Partner  # level 1
    customer: Customer


@pytest.fixture
async def chain(database: Database, settings: Settings) -> Chain:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        top = await create_partner(session, program, tiers["enterprise"])
        middle = await create_partner(session, program, tiers["pro"], parent=top)
        seller = await create_partner(session, program, tiers["starter"], parent=middle)
        customer = await make_customer(session, program, seller)
        return Chain(program, tiers, top, middle, seller, customer)


async def buy(database: Database, chain: Chain, amount: int, currency: str = "USD", at: datetime = T0) -> Purchase:
    async with database.write() as session:
        customer = await session.get(Customer, chain.customer.id)
        assert customer is not None
        purchase = await make_purchase(session, customer, amount, currency=currency, occurred_at=at)
        await service.create_commissions_for_purchase(session, purchase=purchase, customer=customer, now=T0)
        return purchase


async def commissions_of(database: Database, purchase: Purchase) -> list[Commission]:
    async with database.read() as session:
        return await service.commissions_for_purchase(session, purchase.id)


async def refund(database: Database, purchase: Purchase, old: int, new: int, key: str) -> list[Commission]:
    async with database.write() as session:
        fresh = await session.get(Purchase, purchase.id)
        assert fresh is not None
        fresh.refunded_amount = new
        return await service.reverse_commissions_for_refund(
            session,
            purchase=fresh,
            previous_refunded=old,
            new_refunded=new,
            refund_key=key,
            reason="refund",
            now=T0,
        )


async def approve(database: Database, now: datetime) -> int:
    async with database.write() as session:
        return await service.approve_due_commissions(session, now=now)


async def test_a_purchase_pays_three_levels_in_one_ledger_transaction(database: Database, chain: Chain) -> None:
    purchase = await buy(database, chain, 12_345)
    commissions = await commissions_of(database, purchase)
    assert [(c.level, c.partner_id, c.rate_bps, c.amount, c.status) for c in commissions] == [
        (1, chain.seller.id, 500, 617, "pending"),  # 617.25
        (2, chain.middle.id, 300, 370, "pending"),  # 370.35: the recruiter's own (pro) level-2 rate
        (3, chain.top.id, 200, 247, "pending"),  # 246.90: enterprise level-3 rate
    ]
    assert [c.payable_at for c in commissions] == [T0 + 30 * DAY, T0 + 30 * DAY, T0 + 14 * DAY]
    assert len({c.ledger_transaction_id for c in commissions}) == 1
    assert await balances(database, chain.seller.id) == (617, 0)
    assert await balances(database, chain.middle.id) == (370, 0)
    assert await balances(database, chain.top.id) == (247, 0)
    assert await expense(database) == -1234

    async with database.write() as session:  # idempotent
        customer = await session.get(Customer, chain.customer.id)
        fresh = await session.get(Purchase, purchase.id)
        assert customer is not None and fresh is not None
        again = await service.create_commissions_for_purchase(session, purchase=fresh, customer=customer, now=T0)
        transactions = await session.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction))
    assert [c.id for c in again] == [c.id for c in commissions]
    assert transactions == 1
    assert await expense(database) == -1234


async def test_half_cents_round_to_even(database: Database, chain: Chain) -> None:
    amounts = [(c.level, c.amount) for c in await commissions_of(database, await buy(database, chain, 250))]
    assert amounts == [(1, 12), (2, 8), (3, 5)]  # 12.5 -> 12, 7.5 -> 8, 5.0
    amounts = [(c.level, c.amount) for c in await commissions_of(database, await buy(database, chain, 350))]
    assert amounts == [(1, 18), (2, 10), (3, 7)]  # 17.5 -> 18, 10.5 -> 10, 7.0


async def test_currencies_are_kept_apart(database: Database, chain: Chain) -> None:
    await buy(database, chain, 10_000, "USD")
    await buy(database, chain, 20_000, "EUR")
    assert await balances(database, chain.seller.id, "USD") == (500, 0)
    assert await balances(database, chain.seller.id, "EUR") == (1000, 0)
    assert await expense(database, "EUR") == -(1000 + 600 + 400)


async def test_unattributed_customers_pay_nobody(database: Database, chain: Chain) -> None:
    async with database.write() as session:
        stranger = await make_customer(session, chain.program, None)
        purchase = await make_purchase(session, stranger, 10_000)
        made = await service.create_commissions_for_purchase(session, purchase=purchase, customer=stranger, now=T0)
        transactions = await session.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction))
    assert (made, transactions) == ([], 0)


async def test_only_partners_who_accepted_the_current_agreement_earn(database: Database, chain: Chain) -> None:
    async with database.write() as session:
        terms = AgreementVersion(program_id=chain.program.id, version=1, title="Terms", body="...")
        session.add(terms)
        await session.flush()
        session.add(AgreementAcceptance(partner_id=chain.top.id, agreement_version_id=terms.id, accepted_at=T0))
    purchase = await buy(database, chain, 10_000)
    assert [(c.level, c.partner_id, c.amount) for c in await commissions_of(database, purchase)] == [
        (3, chain.top.id, 200)
    ]


async def test_a_suspended_recruiter_is_skipped_but_the_level_above_still_earns(
    database: Database, chain: Chain
) -> None:
    async with database.write() as session:
        middle = await session.get(Partner, chain.middle.id)
        assert middle is not None
        middle.status = "suspended"
    purchase = await buy(database, chain, 10_000)
    assert [(c.level, c.partner_id, c.amount) for c in await commissions_of(database, purchase)] == [
        (1, chain.seller.id, 500),
        (3, chain.top.id, 200),
    ]


async def test_overrides_and_no_recruiting_tiers_shape_the_upper_levels(database: Database, chain: Chain) -> None:
    async with database.write() as session:
        from partners.programs import service as programs

        await programs.set_override(
            session,
            STAFF,
            chain.middle.id,
            base_rate_bps=None,
            level2_rate_bps=650,
            level3_rate_bps=None,
            reason="x",
        )
        enterprise = await session.get(Tier, chain.tiers["enterprise"].id)
        assert enterprise is not None
        enterprise.can_recruit = False
    purchase = await buy(database, chain, 10_000)
    assert [(c.level, c.amount) for c in await commissions_of(database, purchase)] == [(1, 500), (2, 650)]


@pytest.mark.parametrize(
    ("duration", "value", "paid_purchases"),
    [
        ("purchases", 2, [True, True, False]),
        ("months", 1, [True, True, False]),
        ("lifetime", None, [True] * 3),
    ],
)
async def test_the_level_one_tiers_duration_limits_which_purchases_pay(
    database: Database, chain: Chain, duration: str, value: int | None, paid_purchases: list[bool]
) -> None:
    async with database.write() as session:
        starter = await session.get(Tier, chain.tiers["starter"].id)
        assert starter is not None
        starter.commission_duration, starter.commission_duration_value = duration, value
    moments = [T0, T0 + 20 * DAY, T0 + 31 * DAY]  # the month ends on April 10
    paid = []
    for moment in moments:
        purchase = await buy(database, chain, 10_000, at=moment)
        paid.append(bool(await commissions_of(database, purchase)))
    assert paid == paid_purchases


async def test_partial_refunds_then_the_rest_reverse_exactly(database: Database, chain: Chain) -> None:
    purchase = await buy(database, chain, 10_001)  # commissions 500 (500.05), 300 (300.03), 200 (200.02)
    await refund(database, purchase, 0, 3_333, "r1")  # 166.64..., 99.99..., 66.66...
    first = await commissions_of(database, purchase)
    assert [c.reversed_amount for c in first] == [167, 100, 67]
    assert [c.status for c in first] == ["pending"] * 3
    assert await balances(database, chain.seller.id) == (500 - 167, 0)

    await refund(database, purchase, 3_333, 3_333, "r-noop")  # nothing more refunded, nothing reversed
    await refund(database, purchase, 3_333, 9_999, "r2")
    await refund(database, purchase, 9_999, 10_001, "r3")
    final = await commissions_of(database, purchase)
    assert [(c.reversed_amount, c.status) for c in final] == [
        (500, "reversed"),
        (300, "reversed"),
        (200, "reversed"),
    ]
    for partner in (chain.seller, chain.middle, chain.top):
        assert await balances(database, partner.id) == (0, 0)
    assert await expense(database) == 0

    again = await refund(database, purchase, 9_999, 10_001, "r3")  # a replayed refund changes nothing
    assert again == []
    assert await expense(database) == 0


async def test_approval_after_the_hold_moves_what_is_left_to_available(database: Database, chain: Chain) -> None:
    purchase = await buy(database, chain, 10_000)
    await refund(database, purchase, 0, 2_500, "r1")  # seller 500 -> 125 reversed
    assert await approve(database, T0 + 14 * DAY - timedelta(seconds=1)) == 0
    assert await approve(database, T0 + 14 * DAY) == 1  # the enterprise partner's 14 days
    assert await approve(database, T0 + 30 * DAY) == 2
    assert await approve(database, T0 + 30 * DAY) == 0
    assert await balances(database, chain.seller.id) == (0, 375)
    assert await balances(database, chain.middle.id) == (0, 225)
    assert await balances(database, chain.top.id) == (0, 150)
    assert [c.status for c in await commissions_of(database, purchase)] == ["approved"] * 3


async def test_suspended_partners_wait_and_fully_reversed_commissions_move_nothing(
    database: Database, chain: Chain
) -> None:
    purchase = await buy(database, chain, 10_000)
    async with database.write() as session:
        seller = await session.get(Partner, chain.seller.id)
        assert seller is not None
        seller.status = "suspended"
    assert await approve(database, T0 + 60 * DAY) == 2
    async with database.write() as session:
        seller = await session.get(Partner, chain.seller.id)
        assert seller is not None
        seller.status = "approved"
    await refund(database, purchase, 0, 10_000, "chargeback")
    commissions = await commissions_of(database, purchase)
    assert [c.status for c in commissions] == ["reversed", "reversed", "reversed"]
    assert await approve(database, T0 + 60 * DAY) == 0  # reversed, no longer pending


async def test_a_refund_after_approval_claws_back_and_the_next_approval_repays(
    database: Database, chain: Chain
) -> None:
    first = await buy(database, chain, 10_000)
    assert await approve(database, T0 + 30 * DAY) == 3
    assert await balances(database, chain.seller.id) == (0, 500)
    async with database.write() as session:  # the partner is paid: the money leaves available
        from partners.commissions import accounts
        from partners.ledger import service as ledger

        available = await accounts.earnings_available_account(session, chain.seller.id, "USD")
        bank = await ledger.open_account(
            session, owner="platform", kind="payouts", currency="USD", may_go_negative=True
        )
        await ledger.transfer(
            session, idempotency_key="payout-1", kind="payout", source=available, destination=bank, amount=500
        )
        seller_commission = await session.scalar(sa.select(Commission).where(Commission.purchase_id == first.id))
        assert seller_commission is not None
        seller_commission.status = "paid"

    await refund(database, first, 0, 10_000, "chargeback")
    assert await balances(database, chain.seller.id) == (0, -500)  # clawback: a debt
    assert await balances(database, chain.middle.id) == (0, 0)

    second = await buy(database, chain, 30_000)  # 1500 to the seller, pending
    assert await balances(database, chain.seller.id) == (1500, -500)
    await approve(database, T0 + 30 * DAY)
    assert await balances(database, chain.seller.id) == (0, 1000)  # the debt is repaid first
    assert [c.status for c in await commissions_of(database, second)] == ["approved"] * 3

    async with database.read() as session:  # the ledger is balanced
        total = await session.scalar(sa.select(sa.func.sum(LedgerEntry.amount)))
    assert total == 0


async def test_refund_bounds(database: Database, chain: Chain) -> None:
    purchase = await buy(database, chain, 10_000)
    with pytest.raises(Exception, match="refunded total"):
        await refund(database, purchase, 5_000, 4_000, "down")
    with pytest.raises(Exception, match="refunded total"):
        await refund(database, purchase, 0, 10_001, "too-much")
