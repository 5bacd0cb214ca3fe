"""The chain read in one query (`commissions.earners`) agrees with the per-partner rules it replaces on the
purchase path: `affiliates.can_earn`, `programs.effective_rates`, `programs.rate_card` and `hold_days_for`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service as affiliates
from partners.affiliates.models import Partner
from partners.audit.service import Actor
from partners.commissions import accounts
from partners.commissions.earners import Member, Sale, earners, load_chain, load_chains
from partners.commissions.service import create_commissions_for_purchase
from partners.db.session import Database
from partners.programs import service as programs
from partners.settings import Settings
from tests.commissions.support import T0, make_customer, make_purchase
from tests.factories import create_partner, create_program

STAFF = Actor("staff", "1")


async def _expected(session: AsyncSession, partner: Partner, level: int) -> tuple[bool, int, int]:
    """(can earn, rate at its level, hold days) by the per-partner functions."""
    can_earn = await affiliates.can_earn(session, partner)
    rates = await programs.effective_rates(session, partner, currency="USD", at=T0)
    card = await programs.rate_card(session, partner)
    rate = rates.rate_for_level(level) if level == 1 or card.tier.can_recruit else 0
    return can_earn, rate if can_earn else 0, rates.hold_days


async def test_the_chain_query_agrees_with_the_per_partner_rules(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(
            session, settings, new_partner_extra_hold_days=7, new_partner_period_days=90
        )
        tiers["enterprise"].can_recruit = False
        top = await create_partner(session, program, tiers["enterprise"])  # may not recruit: earns no level 3
        middle = await create_partner(session, program, tiers["pro"], parent=top)
        child = await create_partner(session, program, tiers["starter"], parent=middle)
        child.approved_at = T0 - timedelta(days=10)  # new: extra hold days
        top.approved_at = T0 - timedelta(days=400)
        middle.approved_at = T0 - timedelta(days=400)
        await programs.set_override(
            session, STAFF, middle.id, base_rate_bps=None, level2_rate_bps=450, level3_rate_bps=None, reason="deal"
        )
        customer = await make_customer(session, program, child)
        await make_purchase(session, customer, 150_000, occurred_at=T0 - timedelta(hours=2))  # lifts the bonus
        # An agreement: the child accepts it, the middle partner does not (so it cannot earn).
        await affiliates.publish_agreement(session, program.id, title="Terms", body="...", actor=STAFF)
        await affiliates.accept_agreement(session, child, 1, ip=None, user_agent=None, now=T0)
        await session.flush()

        chain = await load_chain(session, child.id, currency="USD", at=T0)
        sale = Sale(1, "p-1", customer.id, child.id, 10_000, "USD", T0, T0 - timedelta(hours=2), T0)
        found = {earner.level: earner for earner in earners(chain, sale)}
        expected = {
            level: await _expected(session, partner, level)
            for level, partner in enumerate((child, middle, top), start=1)
        }

    assert [(member.level, member.partner_id) for member in chain.members] == [
        (1, child.id),
        (2, middle.id),
        (3, top.id),
    ]
    for member in chain.members:
        can_earn, rate, hold_days = expected[member.level]
        assert member.can_earn == can_earn, member
        assert member.hold_days(T0) == hold_days, member
        assert (found[member.level].rate_bps if member.level in found else 0) == rate, member
    # The figures themselves: the starter's bonus step (750 bps) and the extra hold; the middle partner has not
    # accepted the agreement; the top partner's tier may not recruit.
    assert {level: (earner.rate_bps, earner.hold_days) for level, earner in found.items()} == {1: (750, 37)}
    assert expected[2][0] is False and expected[3][1] == 0


async def test_a_chain_stops_at_three_levels_and_at_its_root(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partners: list[Partner] = []
        for _ in range(5):
            parent = partners[-1] if partners else None
            partners.append(await create_partner(session, program, tiers["pro"], parent=parent))
        deep = (await load_chain(session, partners[-1].id, currency="USD", at=T0)).members
        root = (await load_chain(session, partners[0].id, currency="USD", at=T0)).members
    assert [member.partner_id for member in deep] == [partner.id for partner in reversed(partners[2:])]
    assert [member.partner_id for member in root] == [partners[0].id]
    assert all(isinstance(member, Member) for member in deep + root)


async def test_the_chain_carries_the_ledger_accounts_once_they_are_opened(
    database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        parent = await create_partner(session, program, tiers["pro"])
        child = await create_partner(session, program, tiers["pro"], parent=parent)
        customer = await make_customer(session, program, child)
        before = await load_chain(session, child.id, currency="USD", at=T0)
        purchase = await make_purchase(session, customer, 10_000)
        paid = await create_commissions_for_purchase(session, purchase=purchase, customer=customer, now=T0)
        after = await load_chain(session, child.id, currency="USD", at=T0)
        in_euros = await load_chain(session, child.id, currency="EUR", at=T0)
        pending = {p.id: (await accounts.earnings_pending_account(session, p.id, "USD")).id for p in (child, parent)}
        expense = (await accounts.commission_expense_account(session, "USD")).id
    assert [member.pending_account for member in before.members] == [None, None] and before.expense_account is None
    assert [(c.partner_id, c.level) for c in paid] == [(child.id, 1), (parent.id, 2)]
    assert {m.partner_id: m.pending_account.id for m in after.members if m.pending_account} == pending
    assert after.expense_account is not None and after.expense_account.id == expense
    assert after.expense_account.kept_as_sum and not after.members[0].pending_account.kept_as_sum  # type: ignore[union-attr]
    assert in_euros.expense_account is None and all(m.pending_account is None for m in in_euros.members)


async def test_the_chains_of_a_batch_come_from_one_query_and_match_one_by_one(
    database: Database, settings: Settings
) -> None:
    """`load_chains` (a purchase batch) answers, sale by sale, what `load_chain` answers for each: another
    partner, another currency, and the same partner later in the month (its referred revenue grown)."""
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        top = await create_partner(session, program, tiers["pro"])
        child = await create_partner(session, program, tiers["starter"], parent=top)
        loner = await create_partner(session, program, tiers["starter"])
        customer = await make_customer(session, program, child)
        await make_purchase(session, customer, 150_000, occurred_at=T0 - timedelta(hours=2))  # lifts the bonus
        await session.flush()
        asked = [
            (child.id, "USD", T0 - timedelta(hours=3)),  # before the purchase: no bonus yet
            (loner.id, "USD", T0),
            (child.id, "usd", T0),  # after it: the bonus step
            (child.id, "EUR", T0),
        ]
        batch = await load_chains(session, asked)
        one_by_one = [await load_chain(session, partner, currency=currency, at=at) for partner, currency, at in asked]
    assert batch == one_by_one
    assert [[member.partner_id for member in chain.members] for chain in batch] == [
        [child.id, top.id],
        [loner.id],
        [child.id, top.id],
        [child.id, top.id],
    ]
    assert [batch[0].members[0].monthly_revenue, batch[2].members[0].monthly_revenue] == [0, 150_000]
    assert [batch[0].members[0].rate_bps, batch[2].members[0].rate_bps] == [500, 750]


async def test_each_member_is_checked_against_its_own_programs_agreement(
    database: Database, settings: Settings
) -> None:
    """Another program's agreement, further along in its versions, does not count for the chain's partners."""
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        other, other_tiers = await create_program(session, settings, slug="other", is_default=False)
        await create_partner(session, other, other_tiers["starter"])
        parent = await create_partner(session, program, tiers["pro"])
        child = await create_partner(session, program, tiers["starter"], parent=parent)
        await affiliates.publish_agreement(session, program.id, title="Terms", body="...", actor=STAFF)
        for version in ("Other terms", "Other terms, second edition"):
            await affiliates.publish_agreement(session, other.id, title=version, body="...", actor=STAFF)
        await affiliates.accept_agreement(session, child, 1, ip=None, user_agent=None, now=T0)
        await session.flush()
        members = (await load_chain(session, child.id, currency="USD", at=T0)).members
        expected = [await affiliates.can_earn(session, partner) for partner in (child, parent)]
    assert expected == [True, False]
    assert [member.can_earn for member in members] == expected
