"""Clawbacks: a refund after payout leaves the balance negative, the next payouts net it first, and a partner
is never paid more than earned net of reversals — checked on fixed scenarios (both engines) and over random
sequences of sales, refunds and payouts (hypothesis, SQLite) against an in-memory model."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from partners.affiliates.models import Partner
from partners.db.base import Base
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.kit.errors import InsufficientFunds, Unprocessable
from partners.payouts import service
from partners.payouts.models import Payout, PayoutAllocation
from partners.programs.models import Program
from partners.settings import Settings
from tests.factories import create_partner, create_program
from tests.payouts.support import T0, balances, confirmed_method, earn, refund

# --- operations and the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sale:
    commission: int


@dataclass(frozen=True)
class Refund:
    sale: int  # index into the sales made so far (modulo)
    percent: int  # of the purchase, on top of what was refunded already


@dataclass(frozen=True)
class Request:
    amount: int


@dataclass(frozen=True)
class RequestShare:
    """A request of `percent` of what is available now (above 100: more than there is)."""

    percent: int


@dataclass(frozen=True)
class Settle:
    payout: int  # index into the payouts in the right state (modulo)
    outcome: str  # paid | failed | returned


Operation = Sale | Refund | Request | RequestShare | Settle


@dataclass
class Model:
    earned: int = 0
    reversed: int = 0
    paid: int = 0  # paid and not returned
    pending: int = 0  # reserved by pending payouts
    debt_from_clawbacks: int = 0  # what refunds took beyond the money that was still there
    sales: list[int] = field(default_factory=list)  # commission ids
    payouts: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (status, amount)

    @property
    def posted(self) -> int:
        return self.earned - self.reversed - self.paid

    @property
    def available(self) -> int:
        return self.posted - self.pending


MINIMUM = 100  # PAYOUT_MINIMUM_AMOUNT=1 in USD cents


async def _apply(database: Database, settings: Settings, partner: Partner, model: Model, op: Operation) -> None:
    if isinstance(op, Sale):
        async with database.write() as session:
            program = await session.get(Program, partner.program_id)
            assert program is not None
            commission = await earn(session, program, partner, op.commission)
        model.sales.append(commission.id)
        model.earned += op.commission
    elif isinstance(op, Refund):
        if not model.sales:
            return
        commission_id = model.sales[op.sale % len(model.sales)]
        before = model.available
        async with database.write() as session:
            taken = await refund(session, commission_id, op.percent / 100, key=f"refund:{uuid.uuid4().hex}")
        model.reversed += taken
        model.debt_from_clawbacks += max(0, taken - max(before, 0))
    elif isinstance(op, Request):
        await _request(database, settings, partner, model, op.amount)
    elif isinstance(op, RequestShare):
        amount = max(model.available, MINIMUM) * op.percent // 100
        await _request(database, settings, partner, model, amount)
    else:
        await _settle(database, model, op)


async def _request(database: Database, settings: Settings, partner: Partner, model: Model, amount: int) -> None:
    fits = MINIMUM <= amount <= model.available
    try:
        async with database.write() as session:
            outcome = await service.request_payout(session, settings, partner, amount=amount, currency="USD", now=T0)
    except InsufficientFunds:
        assert not fits, f"a request of {amount} was refused with {model.available} available"
        return
    except Unprocessable as error:
        assert amount < MINIMUM, error
        return
    assert fits, f"a request of {amount} was accepted with only {model.available} available"
    model.payouts[outcome.payout.id] = ("pending", amount)
    model.pending += amount


async def _settle(database: Database, model: Model, op: Settle) -> None:
    wanted = "paid" if op.outcome == "returned" else "pending"
    candidates = sorted(pid for pid, (status, _amount) in model.payouts.items() if status == wanted)
    if not candidates:
        return
    payout_id = candidates[op.payout % len(candidates)]
    amount = model.payouts[payout_id][1]
    async with database.write() as session:
        payout = await service.get_payout(session, payout_id, for_update=True)
        if op.outcome == "paid":
            assert await service.mark_paid(session, payout, "ref", T0)
        elif op.outcome == "failed":
            assert await service.mark_failed(session, payout, "rejected", T0)
        else:
            assert await service.mark_returned(session, payout, "returned", T0)
    model.payouts[payout_id] = (op.outcome, amount)
    if op.outcome == "paid":
        model.pending -= amount
        model.paid += amount
    elif op.outcome == "failed":
        model.pending -= amount
    else:
        model.paid -= amount


async def _check(database: Database, partner: Partner, model: Model) -> None:
    found = await balances(database, partner.id)
    assert (found.posted, found.available) == (model.posted, model.available)
    # the clearing account holds exactly what was paid to everybody (one partner per database here or not)
    assert model.paid + model.pending <= model.earned - model.reversed + model.debt_from_clawbacks
    assert model.paid <= model.earned
    async with database.read() as session:
        payouts = list(await session.scalars(sa.select(Payout).where(Payout.partner_id == partner.id)))
        for payout in payouts:
            assert (payout.status, payout.amount) == model.payouts[payout.id]
            allocated = await session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(PayoutAllocation.amount), 0)).where(
                    PayoutAllocation.payout_id == payout.id
                )
            )
            assert allocated == payout.amount  # every cent paid is accounted for by commissions net of clawbacks


async def run_sequence(database: Database, settings: Settings, operations: list[Operation]) -> tuple[Model, Partner]:
    async with database.write() as session:
        program, tiers = await create_program(session, settings, slug=f"p-{uuid.uuid4().hex[:10]}")
        partner = await create_partner(session, program, tiers["starter"])
    await confirmed_method(database, settings, partner)
    model = Model()
    for op in operations:
        before_available = model.available
        await _apply(database, settings, partner, model, op)
        if not isinstance(op, Refund):  # only a refund can push the balance down below zero
            assert model.available >= min(before_available, 0)
        await _check(database, partner, model)
    return model, partner


def _settings_for(settings: Settings) -> Settings:
    return settings.model_copy(update={"payout_minimum_amount": settings.payout_minimum_amount / 50})


# --- fixed scenarios on both engines -----------------------------------------------------------------------


SCENARIOS: list[list[Operation]] = [
    # paid, then the sale is refunded in full: negative balance; the next sale pays the debt first
    [Sale(10_000), Request(10_000), Settle(0, "paid"), Refund(0, 100), Request(100), Sale(4_000),
     Request(100), Sale(9_000), Request(3_001), Request(3_000), Settle(0, "paid")],
    # partial refunds around a failed and a returned payout
    [Sale(5_000), Sale(7_000), Request(11_000), Settle(0, "failed"), Refund(1, 33), Request(9_000),
     Settle(0, "paid"), Refund(1, 50), Refund(0, 17), Settle(0, "returned"), Request(12_000), Request(9_000)],
    # cancellation-free race of requests against refunds
    [Sale(300), Request(200), Refund(0, 100), Request(100), Settle(0, "paid"), Sale(1_000), Request(900)],
]  # fmt: skip


@pytest.mark.parametrize("operations", SCENARIOS)
async def test_clawback_scenarios_keep_the_ledger_and_the_model_equal(
    database: Database, settings: Settings, operations: list[Operation]
) -> None:
    await run_sequence(database, _settings_for(settings), operations)


async def test_a_refund_after_payout_goes_negative_and_the_next_payout_nets_it(
    database: Database, settings: Settings
) -> None:
    settings = _settings_for(settings)
    model, partner = await run_sequence(
        database,
        settings,
        [Sale(10_000), Sale(5_000), Request(15_000), Settle(0, "paid"), Refund(0, 50)],
    )
    assert (model.posted, model.available) == (-5_000, -5_000)
    async with database.write() as session:
        program = await session.get(Program, partner.program_id)
        assert program is not None
        await earn(session, program, partner, 20_000)
    assert (await balances(database, partner.id)).available == 15_000
    with pytest.raises(InsufficientFunds):
        async with database.write() as session:
            await service.request_payout(session, settings, partner, amount=15_001, currency="USD", now=T0)
    async with database.write() as session:
        outcome = await service.request_payout(session, settings, partner, amount=15_000, currency="USD", now=T0)
        allocations = await service.allocations_of(session, outcome.payout.id)
    # the new commission (20,000) pays this payout and the 5,000 clawed back on the first sale
    assert sorted(allocation.amount for allocation in allocations) == [-5_000, 20_000]
    assert (await balances(database, partner.id)).available == 0


# --- random sequences (hypothesis, SQLite) -----------------------------------------------------------------


sales = st.builds(Sale, st.integers(min_value=1, max_value=20_000))
refunds = st.builds(Refund, st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=100))
requests = st.one_of(
    st.builds(RequestShare, st.integers(min_value=1, max_value=100)),
    st.builds(RequestShare, st.integers(min_value=50, max_value=100)),
    st.builds(RequestShare, st.integers(min_value=101, max_value=150)),
    st.builds(Request, st.integers(min_value=50, max_value=30_000)),
)
settlements = st.builds(
    Settle, st.integers(min_value=0, max_value=50), st.sampled_from(("paid", "paid", "failed", "returned"))
)


def _flatten(rounds: list[tuple[Operation | None, ...]]) -> list[Operation]:
    return [op for one_round in rounds for op in one_round if op is not None]


# Rounds of "maybe a sale, a request, a settlement, a refund" (each left out now and then), so that histories
# where money is paid, then clawed back, then netted by later payouts are common.
rounds = st.tuples(
    st.one_of(st.none(), sales, sales),
    st.one_of(st.none(), requests, requests, requests),
    st.one_of(st.none(), settlements, settlements, settlements),
    st.one_of(st.none(), refunds),
)
operations = st.lists(rounds, min_size=1, max_size=8).map(_flatten)


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clawbacks") / "property.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=operations)
def test_random_sales_refunds_and_payouts_never_pay_beyond_earnings(
    sqlite_path: Path, sequence: list[Operation]
) -> None:
    settings = Settings(
        PARTNERS_ENV="test",
        DATABASE_URL=f"sqlite+aiosqlite:///{sqlite_path}",
        SECRET_KEY="test-secret-key-0123456789abcdef",
        PAYOUT_MINIMUM_AMOUNT="1",
    )

    async def run() -> None:
        database = Database(create_engine(settings.database_url))
        try:
            await run_sequence(database, settings, sequence)
        finally:
            await database.dispose()

    asyncio.run(run())
