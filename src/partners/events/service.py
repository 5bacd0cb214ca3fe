"""Host events: signup, purchase, refund and chargeback. Each call is one unit of work (the caller commits);
purchases come in batches (`record_purchases`, from `events.batching`), each purchase whole or not at all.

Idempotency: every event is keyed by (kind, external id) in `host_events`. The row is inserted FIRST, with
`ON CONFLICT DO NOTHING`: on PostgreSQL a concurrent duplicate waits on the unique index until the first
transaction ends, then finds its committed row; on SQLite write transactions are serialised. A replay with
the same payload gets the stored answer and status code and changes nothing; the same id with another
payload is a 409 naming `external_id`. Errors are not remembered: a rejected event rolls back whole, so the
host may fix the cause (say, send the missing signup) and send the same event again. A signup's external id
is the customer's host id, so a customer is signed up once: a second signup of it with other data is a 409.

A purchase by a customer the platform has never seen is a 404 naming `customer`, not a silent unattributed
customer: events can arrive out of order, and recording the purchase first would lose the attribution the
signup carries. The host sends the signup (idempotent, cheap) and retries the purchase.

Welcome rewards (double-sided): an attributed customer gets the program's welcome reward once, decided at
signup and marked on `customer.welcome_reward_given_at`. Credits are to be applied now; a percentage
discount is for the host to apply to the customer's first purchase (`apply_now` is false).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from partners.affiliates.models import Partner
from partners.commissions import service as commissions
from partners.commissions.earners import Chain, Sale, load_chains
from partners.db import bulk, pipeline
from partners.db.session import dialect_name
from partners.db.types import utcnow
from partners.events.models import HostEvent, Purchase, Refund
from partners.events.schemas import (
    ChargebackIn,
    CommissionOut,
    EventIn,
    PurchaseIn,
    PurchaseOut,
    RefundIn,
    RefundOut,
    ReversedCommissionOut,
    SignupIn,
    SignupOut,
    WelcomeReward,
)
from partners.kit.errors import Conflict, IdempotencyConflict, NotFound, Unprocessable
from partners.ledger.service import payload_hash
from partners.programs import service as programs
from partners.programs.models import Program
from partners.rollups import service as rollups
from partners.settings import Settings
from partners.tracking import service as tracking
from partners.tracking.models import Customer

_host_events = cast(sa.Table, HostEvent.__table__)


@dataclass(frozen=True)
class EventResult:
    """The answer to a host event: an HTTP status code and a JSON body (stored for replays)."""

    status_code: int
    body: dict[str, Any]


# --- idempotency ---------------------------------------------------------------------------------------


class EventFailed(Exception):
    """Event `index` of a batch was rejected or failed with `error`. The unit of work must be rolled back: the
    batch's other events may be written in part."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


async def _claim_each(session: AsyncSession, kind: str, keys: Sequence[tuple[str, str]]) -> list[int | EventResult]:
    """Insert the rows of events (external id, payload digest), in one statement; for each, its new row's id,
    or the stored answer when the event was seen before (`EventFailed` when it came with another payload)."""
    created_at = utcnow()
    rows = [
        {
            "kind": kind,
            "external_id": external_id,
            "payload_hash": digest,
            "status_code": 0,
            "response": {},
            "created_at": created_at,
        }
        for external_id, digest in keys
    ]
    claim = bulk.insert(dialect_name(session), _host_events, rows, skip_conflicts=True, returning=("id", "external_id"))
    inserted = await session.execute(claim.statement, claim.parameters)
    new_ids = {external_id: int(event_id) for event_id, external_id in inserted.all()}
    seen = await _seen_events(session, kind, [external_id for external_id, _ in keys if external_id not in new_ids])
    claims: list[int | EventResult] = []
    for index, (external_id, digest) in enumerate(keys):
        if external_id in new_ids:
            claims.append(new_ids[external_id])
            continue
        existing = seen[external_id]
        if existing.payload_hash != digest:
            conflict = IdempotencyConflict(
                f"{kind} event {external_id!r} was already received with another payload", field="external_id"
            )
            raise EventFailed(index, conflict)
        claims.append(EventResult(existing.status_code, existing.response))
    return claims


async def _seen_events(session: AsyncSession, kind: str, external_ids: list[str]) -> dict[str, HostEvent]:
    if not external_ids:
        return {}
    found = await session.scalars(
        sa.select(HostEvent)
        .where(HostEvent.kind == kind, HostEvent.external_id.in_(external_ids))
        .execution_options(populate_existing=True)
    )
    return {event.external_id: event for event in found}


async def _once(
    session: AsyncSession, kind: str, event: EventIn, work: Callable[[], Awaitable[EventResult]]
) -> EventResult:
    digest = payload_hash(event.model_dump(mode="json"))
    try:
        [claimed] = await _claim_each(session, kind, [(event.external_id, digest)])
    except EventFailed as failed:
        raise failed.error from None
    if isinstance(claimed, EventResult):
        return claimed
    result = await work()
    await _store_answers(session, {claimed: result})
    return result


async def _store_answers(session: AsyncSession, answers: dict[int, EventResult]) -> None:
    """Each claimed event's answer (by its row id), for replays."""
    rows = [
        {"id": event_id, "status_code": answer.status_code, "response": answer.body}
        for event_id, answer in answers.items()
    ]
    stored = bulk.update(dialect_name(session), _host_events, rows)
    await pipeline.run_later(session, stored.statement, stored.parameters)


def _answer(status_code: int, body: BaseModel) -> EventResult:
    return EventResult(status_code, body.model_dump(mode="json"))


async def _referral_codes(session: AsyncSession, partner_ids: Iterable[int]) -> dict[int, str]:
    ids = set(partner_ids)
    if not ids:
        return {}
    rows = await session.execute(sa.select(Partner.id, Partner.referral_code).where(Partner.id.in_(ids)))
    return {partner_id: code for partner_id, code in rows.all()}


# --- signup --------------------------------------------------------------------------------------------


async def record_signup(session: AsyncSession, settings: Settings, event: SignupIn, *, now: datetime) -> EventResult:
    """Create (or find) the customer and attribute it. 201 for a new customer, 200 for a known one."""

    async def work() -> EventResult:
        known = await tracking.find_customer(session, event.external_id)
        program = await programs.ensure_default_program(session, settings)
        customer = await tracking.attribute_customer(
            session,
            settings,
            program=program,
            external_id=event.external_id,
            email=event.email,
            click_id=event.click_id,
            referral_code=event.referral_code,
            coupon_code=event.coupon_code,
            ip=event.ip,
            now=event.occurred_at or now,
        )
        if customer.program_id is not None and customer.program_id != program.id:
            program = await session.get_one(Program, customer.program_id)
        codes = await _referral_codes(session, [customer.partner_id] if customer.partner_id else [])
        body = SignupOut(
            customer_id=customer.id,
            external_id=customer.external_id,
            partner=codes.get(customer.partner_id) if customer.partner_id else None,
            attributed_via=customer.attributed_via if customer.partner_id else None,
            welcome_reward=_give_welcome_reward(program, customer, now),
        )
        await session.flush()
        return _answer(200 if known else 201, body)

    return await _once(session, "signup", event, work)


def _give_welcome_reward(program: Program, customer: Customer, now: datetime) -> WelcomeReward | None:
    """The program's welcome reward for a referred customer, once; None when there is none to give."""
    if customer.partner_id is None or customer.welcome_reward_given_at is not None:
        return None
    value = program.welcome_reward_value
    if program.welcome_reward_kind == "credits" and value > 0:
        reward = WelcomeReward(
            kind="credits", value=value, currency=program.currency, apply_now=True, applies_to="account"
        )
    elif program.welcome_reward_kind == "discount_percent" and value > 0 and customer.first_purchase_at is None:
        reward = WelcomeReward(
            kind="discount_percent", value=value, currency=None, apply_now=False, applies_to="first_purchase"
        )
    else:
        return None
    customer.welcome_reward_given_at = now
    return reward


# --- purchase ------------------------------------------------------------------------------------------


_customers = cast(sa.Table, Customer.__table__)
_purchases = cast(sa.Table, Purchase.__table__)
_LOCK_CUSTOMERS = (
    sa.select(
        _customers.c.external_id,
        _customers.c.id,
        _customers.c.partner_id,
        _customers.c.first_purchase_at,
        _customers.c.attributed_via,
        _customers.c.click_id,
        _customers.c.attributed_at,
    )
    .where(_customers.c.external_id.in_(sa.bindparam("external_ids", expanding=True)))
    .order_by(_customers.c.id)  # concurrent batches lock customers in the same order
    .with_for_update()
)


@dataclass(slots=True)
class _Buyer:
    """The customer of purchases, as locked for them; `first_purchase_at` follows the batch's purchases."""

    id: int
    partner_id: int | None
    first_purchase_at: datetime | None
    attributed_via: str | None
    click_id: str | None
    attributed_at: datetime | None


@dataclass(slots=True)
class _Recorded:
    """A purchase written, and what its answer needs."""

    index: int  # in the batch
    purchase_id: int
    customer_id: int
    first_purchase: bool
    paying: tuple[Sale, Chain] | None = None  # the sale and the chain that earns on it; None: nobody to pay


async def record_purchase(session: AsyncSession, event: PurchaseIn, *, now: datetime) -> EventResult:
    """Record the purchase and, in the same transaction, the commissions of up to three levels."""
    try:
        [result] = await record_purchases(session, [(event, now)])
    except EventFailed as failed:
        raise failed.error from None
    return result


async def record_purchases(
    session: AsyncSession, purchases: Sequence[tuple[PurchaseIn, datetime]]
) -> list[EventResult]:
    """Record purchases (each with the time it was received) and their commissions in the unit of work: the
    answers in the order given, or `EventFailed` naming the first purchase rejected.

    The busiest write of the platform (benchmark 2), written for batches (`events.batching`): one statement each
    for all the claims, customers, purchases, chains, ledger transactions, ledger entries, commissions and
    answers; the rollups are counted here (`rollups.service`), not by the ORM listeners. Each external id
    appears once. The purchases are taken in the order given (a customer's first purchase, its purchase
    count)."""
    external_ids = [event.external_id for event, _ in purchases]
    if len(set(external_ids)) != len(external_ids):
        raise ValueError("a batch of purchases holds each external id once")
    digests = [payload_hash(event.model_dump(mode="json")) for event, _ in purchases]
    claims = await _claim_each(session, "purchase", list(zip(external_ids, digests, strict=True)))
    new = [index for index, claim in enumerate(claims) if isinstance(claim, int)]
    recorded = await _record_new(session, [(index, *purchases[index]) for index in new]) if new else []
    paying = [(r.index, r.paying) for r in recorded if r.paying is not None]
    try:
        paid = iter(await commissions.pay_commissions(session, [sale_and_chain for _, sale_and_chain in paying]))
    except commissions.SaleNotPaid as unpaid:
        raise EventFailed(paying[unpaid.position][0], unpaid.error) from None
    answers = {
        r.index: _answer(201, _purchase_out(purchases[r.index][0], r, next(paid) if r.paying else [])) for r in recorded
    }
    if answers:
        await _store_answers(session, {cast(int, claims[index]): answer for index, answer in answers.items()})
    return [claim if isinstance(claim, EventResult) else answers[index] for index, claim in enumerate(claims)]


async def _record_new(session: AsyncSession, purchases: list[tuple[int, PurchaseIn, datetime]]) -> list[_Recorded]:
    """Write the purchases never seen before (index in the batch, event, time received) and read the chains that
    earn on them (one query for all)."""
    buyers = await _lock_customers(session, purchases)
    purchase_ids = await _insert_purchases(session, purchases, buyers)
    recorded: list[_Recorded] = []
    sold: list[tuple[_Recorded, Sale]] = []
    moved: dict[int, datetime] = {}  # customer id: its first purchase, moved by this batch
    for index, event, now in purchases:
        buyer = buyers[event.customer]
        occurred_at = event.occurred_at or now
        written = _Recorded(index, purchase_ids[event.external_id], buyer.id, buyer.first_purchase_at is None)
        if written.first_purchase and buyer.attributed_via == "click":
            await _count_link_buyer(session, buyer.partner_id, buyer.click_id, buyer.attributed_at)
        first_purchase_at = _move_first_purchase(buyer, occurred_at, moved)
        recorded.append(written)
        if buyer.partner_id is not None:
            sale = Sale(
                purchase_id=written.purchase_id,
                external_id=event.external_id,
                customer_id=buyer.id,
                partner_id=buyer.partner_id,
                amount=event.amount,
                currency=event.currency,
                occurred_at=occurred_at,
                first_purchase_at=first_purchase_at,
                recorded_at=now,
            )
            _count_purchase(session, sale)
            sold.append((written, sale))
    if moved:
        await _save_first_purchases(session, moved)
    chains = await load_chains(session, [(sale.partner_id, sale.currency, sale.occurred_at) for _, sale in sold])
    for (written, sale), chain in zip(sold, chains, strict=True):
        written.paying = (sale, chain)
    return recorded


async def _lock_customers(
    session: AsyncSession, purchases: list[tuple[int, PurchaseIn, datetime]]
) -> dict[str, _Buyer]:
    """The purchases' customers, locked: a customer's purchases are numbered one after the other (first
    purchase, duration rules). `EventFailed` (404 naming `customer`) for the first purchase of an unknown one."""
    wanted = sorted({event.customer for _, event, _ in purchases})
    rows = await session.execute(_LOCK_CUSTOMERS, {"external_ids": wanted})
    buyers = {row.external_id: _Buyer(*row[1:]) for row in rows}
    for index, event, _ in purchases:
        if event.customer not in buyers:
            unknown = NotFound(
                f"customer {event.customer!r} is unknown: send its signup first, then this purchase again",
                field="customer",
            )
            raise EventFailed(index, unknown)
    return buyers


async def _insert_purchases(
    session: AsyncSession, purchases: list[tuple[int, PurchaseIn, datetime]], buyers: dict[str, _Buyer]
) -> dict[str, int]:
    """Purchase id by external id. `EventFailed` (409) for the first purchase already stored (written by other
    means than a purchase event, or with another event id)."""
    rows = [
        {
            "external_id": event.external_id,
            "customer_id": buyers[event.customer].id,
            "partner_id": buyers[event.customer].partner_id,
            "amount": event.amount,
            "currency": event.currency,
            "product": event.product,
            "occurred_at": event.occurred_at or now,
            "refunded_amount": 0,
            "status": "completed",
            "created_at": now,
        }
        for _, event, now in purchases
    ]
    insert = bulk.insert(dialect_name(session), _purchases, rows, skip_conflicts=True, returning=("id", "external_id"))
    inserted = await session.execute(insert.statement, insert.parameters)
    ids = {external_id: int(purchase_id) for purchase_id, external_id in inserted.all()}
    for index, event, _ in purchases:
        if event.external_id not in ids:
            raise EventFailed(index, Conflict(f"purchase {event.external_id!r} already exists", field="external_id"))
    return ids


def _move_first_purchase(buyer: _Buyer, occurred_at: datetime, moved: dict[int, datetime]) -> datetime:
    """The customer's first purchase, this one included (moved earlier by a late-sent older purchase)."""
    if buyer.first_purchase_at is None or occurred_at < buyer.first_purchase_at:
        buyer.first_purchase_at = moved[buyer.id] = occurred_at
    return buyer.first_purchase_at


async def _save_first_purchases(session: AsyncSession, moved: dict[int, datetime]) -> None:
    """Write the customers' moved first purchases, in one statement; a Customer loaded in this unit of work
    follows."""
    rows = [{"id": customer_id, "first_purchase_at": at} for customer_id, at in moved.items()]
    saved = bulk.update(dialect_name(session), _customers, rows)
    await pipeline.run_later(session, saved.statement, saved.parameters)
    for customer_id, first_purchase_at in moved.items():
        loaded = session.sync_session.identity_map.get(identity_key(Customer, customer_id))
        if loaded is not None:
            set_committed_value(loaded, "first_purchase_at", first_purchase_at)


async def _count_link_buyer(
    session: AsyncSession, partner_id: int | None, click_id: str | None, attributed_at: datetime | None
) -> None:
    """A customer who signed up through one of its partner's links becomes, at its first purchase, one of that
    link's buyers."""
    if partner_id is None or click_id is None or attributed_at is None:
        return
    link_id = await session.scalar(rollups.link_of_click(click_id, partner_id))
    if link_id is not None:
        rollups.count_link_buyer(session.sync_session, link_id, attributed_at)


def _count_purchase(session: AsyncSession, sale: Sale) -> None:
    rollups.count_purchase(
        session.sync_session,
        partner_id=sale.partner_id,
        customer_id=sale.customer_id,
        occurred_at=sale.occurred_at,
        currency=sale.currency,
        amount=sale.amount,
    )


def _level1_code(paying: tuple[Sale, Chain] | None) -> str | None:
    if paying is None or not paying[1].members:
        return None
    return paying[1].members[0].referral_code


def _purchase_out(event: PurchaseIn, recorded: _Recorded, created: list[commissions.NewCommission]) -> PurchaseOut:
    return PurchaseOut(
        purchase_id=recorded.purchase_id,
        external_id=event.external_id,
        customer_id=recorded.customer_id,
        partner=_level1_code(recorded.paying),
        amount=event.amount,
        currency=event.currency,
        first_purchase=recorded.first_purchase,
        commissions=[
            CommissionOut(partner=c.referral_code, level=c.level, amount=c.amount, currency=c.currency, status=c.status)
            for c in created
        ],
    )


# --- refunds and chargebacks ---------------------------------------------------------------------------


async def record_refund(session: AsyncSession, event: RefundIn, *, now: datetime) -> EventResult:
    """Refund part or all of what is left of a purchase; commissions are reversed pro rata."""

    async def work() -> EventResult:
        purchase = await _locked_purchase(session, event.purchase_id)
        left = purchase.amount - purchase.refunded_amount
        if event.amount > left:
            raise Unprocessable(
                f"amount {event.amount} is more than the {left} {purchase.currency} left to refund "
                f"on purchase {purchase.external_id!r}",
                field="amount",
            )
        return await _reverse(session, purchase, "refund", event.external_id, event.amount, event.reason, now)

    return await _once(session, "refund", event, work)


async def record_chargeback(session: AsyncSession, event: ChargebackIn, *, now: datetime) -> EventResult:
    """A chargeback takes back everything not refunded yet; commissions follow."""

    async def work() -> EventResult:
        purchase = await _locked_purchase(session, event.purchase_id)
        left = purchase.amount - purchase.refunded_amount
        if left == 0:
            raise Unprocessable(
                f"purchase {purchase.external_id!r} is already fully refunded: nothing to charge back",
                field="purchase_id",
            )
        return await _reverse(session, purchase, "chargeback", event.external_id, left, event.reason, now)

    return await _once(session, "chargeback", event, work)


async def _locked_purchase(session: AsyncSession, external_id: str) -> Purchase:
    """The purchase, row-locked so that two refunds of it are applied one after the other."""
    purchase = await session.scalar(
        sa.select(Purchase)
        .where(Purchase.external_id == external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if purchase is None:
        raise NotFound(f"purchase {external_id!r} not found", field="purchase_id")
    return purchase


async def _reverse(
    session: AsyncSession,
    purchase: Purchase,
    kind: str,
    external_id: str,
    amount: int,
    reason: str,
    now: datetime,
) -> EventResult:
    if await session.scalar(sa.select(Refund.id).where(Refund.external_id == external_id)):
        raise Conflict(
            f"refund id {external_id!r} is already used by another refund or chargeback", field="external_id"
        )
    before = {c.id: c.reversed_amount for c in await commissions.commissions_for_purchase(session, purchase.id)}
    previous_refunded = purchase.refunded_amount
    refund = Refund(external_id=external_id, purchase_id=purchase.id, kind=kind, amount=amount, reason=reason)
    session.add(refund)
    purchase.refunded_amount = previous_refunded + amount
    if kind == "chargeback":
        purchase.status = "charged_back"
    else:
        purchase.status = "refunded" if purchase.refunded_amount == purchase.amount else "partially_refunded"
    await session.flush()
    await commissions.reverse_commissions_for_refund(
        session,
        purchase=purchase,
        previous_refunded=previous_refunded,
        new_refunded=purchase.refunded_amount,
        refund_key=f"{kind}:{external_id}",
        reason=reason or kind,
        now=now,
    )
    after = await commissions.commissions_for_purchase(session, purchase.id)
    codes = await _referral_codes(session, [c.partner_id for c in after])
    body = RefundOut(
        refund_id=refund.id,
        external_id=external_id,
        kind="chargeback" if kind == "chargeback" else "refund",
        purchase_id=purchase.external_id,
        amount=amount,
        currency=purchase.currency,
        refunded_total=purchase.refunded_amount,
        purchase_status=purchase.status,
        commissions=[
            ReversedCommissionOut(
                partner=codes[c.partner_id],
                level=c.level,
                currency=c.currency,
                amount=c.amount,
                reversed_now=c.reversed_amount - before.get(c.id, 0),
                reversed_total=c.reversed_amount,
                status=c.status,
            )
            for c in after
        ],
    )
    return _answer(201, body)
