"""Purchase events written in batches (`events.batching`, `events.service.record_purchases`): the purchases
waiting are written in one unit of work, each gets its own answer, and a rejected one takes nothing else down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.audit.service import Actor
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.events import service
from partners.events.batching import PurchaseBatcher
from partners.events.models import HostEvent, Purchase
from partners.events.schemas import PurchaseIn, SignupIn
from partners.identity.models import ApiKey
from partners.kit.errors import IdempotencyConflict, NotFound, Unprocessable
from partners.ledger.models import LedgerEntry
from partners.programs import service as programs
from partners.rollups import service as rollups
from partners.settings import Settings
from tests.events.support import Chain, count, make_chain

T0 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
Recorder = Callable[..., Awaitable[list[service.EventResult]]]


@pytest.fixture
async def chain(database: Database, settings: Settings) -> Chain:
    chain = await make_chain(database, settings)
    for customer, code in (("cust-1", "cyd"), ("cust-2", "cyd"), ("cust-3", "ben"), ("walk-in", None)):
        async with database.write() as session:
            signup = SignupIn(external_id=customer, email=f"{customer}@example.org", referral_code=code)
            await service.record_signup(session, settings, signup, now=T0 - timedelta(days=1))
    return chain


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every `record_purchases` call (a unit of work of the batcher, or one event alone)."""
    sizes: list[int] = []
    original: Recorder = service.record_purchases

    async def counted(session: Any, purchases: Sequence[Any]) -> list[service.EventResult]:
        sizes.append(len(purchases))
        return await original(session, purchases)

    monkeypatch.setattr(service, "record_purchases", counted)
    return sizes


def event(external_id: str, customer: str = "cust-1", amount: int = 10_000) -> PurchaseIn:
    return PurchaseIn(external_id=external_id, customer=customer, amount=amount, currency="USD", product="sms")


async def record_all(batcher: PurchaseBatcher, events: list[PurchaseIn], now: datetime = T0) -> list[Any]:
    """Hand the events to the batcher at once, as concurrent requests do; an answer or the error raised."""
    return await asyncio.gather(*[batcher.record(e, now=now) for e in events], return_exceptions=True)


async def assert_books_balance_and_rollups_match(database: Database) -> None:
    """The ledger sums to zero and every rollup table equals its recount from the raw rows."""
    async with database.read() as session:
        entries = await session.scalar(sa.select(sa.func.sum(LedgerEntry.amount)))
        found = await rollups.stored_and_recounted(session)
    assert entries == 0
    for name, (stored, recounted) in found.items():
        assert stored == recounted, name


def commissions_of(result: Any) -> list[tuple[str, int, int]]:
    assert isinstance(result, service.EventResult), result
    return [(c["partner"], c["level"], c["amount"]) for c in result.body["commissions"]]


async def test_purchases_waiting_are_written_in_one_unit_of_work_with_their_own_answers(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    batcher = PurchaseBatcher(database, concurrency=1)
    results = await record_all(
        batcher,
        [
            event("pay-1", "cust-1", 12_345),
            event("pay-2", "cust-3", 10_000),
            event("pay-3", "cust-1", 2_000),  # the same customer again: not its first purchase
            event("pay-4", "walk-in", 5_000),  # unattributed: nobody paid
        ],
    )
    assert batch_sizes == [4]
    assert [r.status_code for r in results] == [201] * 4
    # Starter: 5% level 1, 2% level 2, 1% level 3, each round-half-even(amount x rate).
    assert commissions_of(results[0]) == [("cyd", 1, 617), ("ben", 2, 247), ("ada", 3, 123)]
    assert commissions_of(results[1]) == [("ben", 1, 500), ("ada", 2, 200)]
    assert commissions_of(results[2]) == [("cyd", 1, 100), ("ben", 2, 40), ("ada", 3, 20)]
    assert commissions_of(results[3]) == []
    assert [r.body["first_purchase"] for r in results] == [True, True, False, True]
    assert [r.body["partner"] for r in results] == ["cyd", "ben", "cyd", None]
    assert await count(database, Purchase) == 4
    assert await count(database, Commission) == 8
    await assert_books_balance_and_rollups_match(database)


async def test_a_replay_gets_the_answer_its_batch_stored(database: Database, chain: Chain) -> None:
    batcher = PurchaseBatcher(database)
    [first] = await record_all(batcher, [event("pay-1")])
    [again] = await record_all(batcher, [event("pay-1")])
    assert again == first
    assert await count(database, Purchase) == 1


async def test_a_purchase_sent_as_soon_as_the_last_answer_came_is_written(database: Database, chain: Chain) -> None:
    """The caller of the last event of a drain runs before that drain's task has finished: its next event must
    start a drain of its own, not wait on the one that has stopped looking (it used to wait forever)."""
    batcher = PurchaseBatcher(database)
    for number in range(3):
        async with asyncio.timeout(10):  # no task in between (`wait_for` would add one, and hide the bug)
            answer = await batcher.record(event(f"next-{number}"), now=T0)
        assert answer.status_code == 201
    assert await count(database, Purchase) == 3


async def test_a_batch_waits_for_the_callers_just_answered_but_a_lone_caller_never_waits(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    """Six callers each send their next event when answered, coming back 0 to 50 ms later: the second batch
    gathers all six (without the wait the first to come back would go alone). The event after that busy spell
    waits for companions that never come, at most `gather_seconds`; then a lone caller never waits."""
    gather = 1.0
    batcher = PurchaseBatcher(database, concurrency=1, gather_seconds=gather)

    async def caller(number: int) -> list[int]:
        first = await batcher.record(event(f"first-{number}", f"cust-{number % 3 + 1}"), now=T0)
        await asyncio.sleep(0.01 * number)
        second = await batcher.record(event(f"second-{number}", f"cust-{number % 3 + 1}"), now=T0)
        return [first.status_code, second.status_code]

    answers = await asyncio.gather(*[caller(number) for number in range(6)])
    assert answers == [[201, 201]] * 6
    assert batch_sizes == [6, 6]
    await batcher.record(event("after-the-spell"), now=T0)  # waits up to `gather` for five more, then goes alone
    async with asyncio.timeout(gather * 0.8):  # the last batch saw one caller: no wait
        alone = await batcher.record(event("alone"), now=T0)
    assert alone.status_code == 201
    assert batch_sizes == [6, 6, 1, 1]


async def test_without_the_wait_callers_coming_back_one_by_one_are_written_one_by_one(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    """The same callers with `gather_seconds=0`: what the wait is for."""
    batcher = PurchaseBatcher(database, concurrency=1, gather_seconds=0)

    async def caller(number: int) -> None:
        await batcher.record(event(f"first-{number}", f"cust-{number % 3 + 1}"), now=T0)
        await asyncio.sleep(0.05 * number)
        await batcher.record(event(f"second-{number}", f"cust-{number % 3 + 1}"), now=T0)

    await asyncio.gather(*[caller(number) for number in range(6)])
    assert batch_sizes[0] == 6
    assert len(batch_sizes) > 2  # the first to come back went alone
    assert sum(batch_sizes) == 12


async def test_a_rejected_purchase_is_answered_alone_and_the_rest_of_its_batch_is_written(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    batcher = PurchaseBatcher(database, concurrency=1)
    results = await record_all(
        batcher, [event("pay-1", "cust-1"), event("pay-2", "ghost"), event("pay-3", "cust-2"), event("pay-4", "cust-3")]
    )
    assert isinstance(results[1], NotFound) and results[1].field == "customer"
    assert [results[i].status_code for i in (0, 2, 3)] == [201, 201, 201]
    # The batch rolled back; the unknown customer's purchase was tried alone, the three others together again.
    assert batch_sizes == [4, 1, 3]
    async with database.read() as session:
        stored = set(await session.scalars(sa.select(Purchase.external_id)))
        claimed = set(await session.scalars(sa.select(HostEvent.external_id).where(HostEvent.kind == "purchase")))
    assert stored == claimed == {"pay-1", "pay-3", "pay-4"}  # errors are not remembered
    assert await count(database, Commission) == 3 + 3 + 2


async def test_after_a_rejected_purchase_the_rest_of_its_batch_does_not_wait(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    """A batch of four saw four callers; the next batch of four loses one to a 404: its three others go again at
    once, not after waiting for a fourth (`gather_seconds`)."""
    batcher = PurchaseBatcher(database, concurrency=1, gather_seconds=30)
    await record_all(batcher, [event(f"pay-{number}", f"cust-{number % 3 + 1}") for number in range(4)])
    async with asyncio.timeout(10):
        results = await record_all(
            batcher, [event("next-1"), event("next-2", "ghost"), event("next-3", "cust-2"), event("next-4", "cust-3")]
        )
    assert isinstance(results[1], NotFound)
    assert batch_sizes == [4, 4, 1, 3]


async def test_a_known_id_with_another_payload_is_a_409_for_that_purchase_only(
    database: Database, chain: Chain
) -> None:
    batcher = PurchaseBatcher(database)
    await record_all(batcher, [event("pay-1", amount=1_000)])
    changed, other = await record_all(batcher, [event("pay-1", amount=2_000), event("pay-2", "cust-2")])
    assert isinstance(changed, IdempotencyConflict) and changed.field == "external_id"
    assert other.status_code == 201
    async with database.read() as session:
        amounts = {p.external_id: p.amount for p in await session.scalars(sa.select(Purchase))}
    assert amounts == {"pay-1": 1_000, "pay-2": 10_000}


async def test_the_same_event_twice_in_one_batch_is_written_once(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    batcher = PurchaseBatcher(database, concurrency=1)
    first, duplicate, other = await record_all(batcher, [event("pay-1"), event("pay-1"), event("pay-2", "cust-2")])
    assert first.status_code == duplicate.status_code == other.status_code == 201
    assert duplicate == first
    assert batch_sizes == [2, 1]  # the duplicate waited for the next batch and found the stored answer
    assert await count(database, Purchase) == 2
    assert await count(database, Commission) == 6


async def test_each_purchase_keeps_the_time_it_was_received(database: Database, chain: Chain) -> None:
    batcher = PurchaseBatcher(database, concurrency=1)
    later = T0 + timedelta(hours=5)
    await asyncio.gather(batcher.record(event("pay-1"), now=T0), batcher.record(event("pay-2", "cust-2"), now=later))
    async with database.read() as session:
        rows = (
            await session.execute(
                sa.select(Purchase.external_id, Purchase.occurred_at, Commission.created_at, Commission.payable_at)
                .join(Commission, Commission.purchase_id == Purchase.id)
                .where(Commission.level == 1)
                .order_by(Purchase.external_id)
            )
        ).all()
    hold = timedelta(days=chain.tiers["starter"].hold_days)
    assert [tuple(row) for row in rows] == [
        ("pay-1", T0, T0, T0 + hold),
        ("pay-2", later, later, later + hold),
    ]


async def test_a_batch_that_fails_as_a_whole_records_each_purchase_alone(
    database: Database, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure no purchase can be blamed for (here: the first unit of work of several purchases) costs the
    batch, never a purchase."""
    original: Recorder = service.record_purchases
    sizes: list[int] = []

    async def failing_once(session: Any, purchases: Sequence[Any]) -> list[service.EventResult]:
        sizes.append(len(purchases))
        if len(sizes) == 1:
            raise RuntimeError("connection lost")
        return await original(session, purchases)

    monkeypatch.setattr(service, "record_purchases", failing_once)
    batcher = PurchaseBatcher(database, concurrency=1)
    results = await record_all(batcher, [event("pay-1"), event("pay-2", "cust-2"), event("pay-3", "cust-3")])
    assert [r.status_code for r in results] == [201, 201, 201]
    assert sizes == [3, 1, 1, 1]
    assert await count(database, Purchase) == 3


async def test_concurrent_purchase_requests_are_all_written_and_add_up(
    client: httpx.AsyncClient, database: Database, chain: Chain
) -> None:
    bodies = [
        {"external_id": f"pay-{i}", "customer": f"cust-{i % 3 + 1}", "amount": 1_000 + i, "currency": "USD",
         "product": "sms"}
        for i in range(12)
    ]  # fmt: skip
    responses = await asyncio.gather(*[client.post("/events/purchase", json=b, headers=chain.host) for b in bodies])
    assert [r.status_code for r in responses] == [201] * 12
    async with database.read() as session:
        paid_rows = await session.execute(
            sa.select(Purchase.external_id, sa.func.sum(Commission.amount).label("paid"))
            .join(Commission, Commission.purchase_id == Purchase.id)
            .group_by(Purchase.external_id)
        )
        paid = {row.external_id: row.paid for row in paid_rows}
        entries = await session.scalar(sa.select(sa.func.sum(LedgerEntry.amount)))
        key_used = await session.scalar(sa.select(ApiKey.last_used_at))
    answered = {r.json()["external_id"]: sum(c["amount"] for c in r.json()["commissions"]) for r in responses}
    assert paid == answered
    assert entries == 0
    assert key_used is not None  # the key was read on a read-only unit of work and touched on a write one


async def test_two_processes_sent_the_same_purchases_write_each_once_without_deadlocks(
    database: Database, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batchers stand for two server processes; a host that retries sends every purchase to both, in
    different orders, a few at a time. Each purchase is written once, both callers get its answer, and no batch
    fails (a deadlock between the processes' batches would fall back to writing its events one by one)."""
    alone: list[str] = []
    record_alone = PurchaseBatcher._record_alone

    async def counted(self: PurchaseBatcher, waiting: Any) -> None:
        alone.append(waiting.event.external_id)
        await record_alone(self, waiting)

    monkeypatch.setattr(PurchaseBatcher, "_record_alone", counted)
    events = [event(f"pay-{i:02}", f"cust-{i % 3 + 1}", 1_000 + i) for i in range(48)]
    # Two batches at a time in each: four units of work in flight on PostgreSQL.
    first, second = (PurchaseBatcher(database, max_batch=6, concurrency=2) for _ in range(2))
    answers = await asyncio.gather(record_all(first, events), record_all(second, list(reversed(events))))
    assert answers[0] == list(reversed(answers[1]))
    assert [a.status_code for a in answers[0]] == [201] * 48
    assert alone == []
    assert await count(database, Purchase) == 48
    assert await count(database, Commission) == 48 * 3 - 16  # cust-3 is ben's: two levels
    await assert_books_balance_and_rollups_match(database)


async def test_a_purchase_whose_rates_cannot_be_paid_is_a_422_for_that_purchase_only(
    database: Database, chain: Chain, batch_sizes: list[int]
) -> None:
    """ben's negotiated level-2 rate of 99% (a typo) with cyd's 5% and ada's 1% adds up to 105% on a sale by
    cyd's customer: that purchase is refused (422 naming `amount`); the purchases of ben's own customer in the
    same batch are written."""
    async with database.write() as session:
        await programs.set_override(
            session, Actor("staff", "1"), chain.ben.id, base_rate_bps=None, level2_rate_bps=9_900,
            level3_rate_bps=None, reason="a typo",
        )  # fmt: skip
    batcher = PurchaseBatcher(database, concurrency=1)
    unpayable, *payable = await record_all(
        batcher, [event("pay-1", "cust-1"), event("pay-2", "cust-3"), event("pay-3", "cust-3")]
    )
    assert isinstance(unpayable, Unprocessable) and unpayable.field == "amount"
    assert [result.status_code for result in payable] == [201, 201]
    assert batch_sizes == [3, 1, 2]  # the batch, the refused purchase alone, the two others together again
    async with database.read() as session:
        assert set(await session.scalars(sa.select(Purchase.external_id))) == {"pay-2", "pay-3"}
