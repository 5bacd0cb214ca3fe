"""Host events: signup, purchase, refund and chargeback. Each call is one unit of work (the caller commits).

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

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions import service as commissions
from partners.commissions.earners import Sale, load_chain
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


_CLAIM = {
    name: dialect.insert(_host_events).on_conflict_do_nothing().returning(_host_events.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_STORE_ANSWER = (
    sa.update(_host_events)
    .where(_host_events.c.id == sa.bindparam("event_id"))
    .values(status_code=sa.bindparam("status_code"), response=sa.bindparam("response"))
)


async def _claim(session: AsyncSession, kind: str, external_id: str, digest: str) -> int | EventResult:
    """Insert the event's row; returns its id, or the stored answer when the event was seen before."""
    inserted = await session.execute(
        _CLAIM[session.get_bind().dialect.name],
        {
            "kind": kind,
            "external_id": external_id,
            "payload_hash": digest,
            "status_code": 0,
            "response": {},
            "created_at": utcnow(),
        },
    )
    event_id = inserted.scalar_one_or_none()
    if event_id is not None:
        return int(event_id)
    existing = await session.scalar(
        sa.select(HostEvent)
        .where(HostEvent.kind == kind, HostEvent.external_id == external_id)
        .execution_options(populate_existing=True)
    )
    assert existing is not None
    if existing.payload_hash != digest:
        raise IdempotencyConflict(
            f"{kind} event {external_id!r} was already received with another payload", field="external_id"
        )
    return EventResult(existing.status_code, existing.response)


async def _once(
    session: AsyncSession, kind: str, event: EventIn, work: Callable[[], Awaitable[EventResult]]
) -> EventResult:
    digest = payload_hash(event.model_dump(mode="json"))
    claimed = await _claim(session, kind, event.external_id, digest)
    if isinstance(claimed, EventResult):
        return claimed
    result = await work()
    await session.execute(
        _STORE_ANSWER, {"event_id": claimed, "status_code": result.status_code, "response": result.body}
    )
    return result


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
_LOCK_CUSTOMER = (
    sa.select(
        _customers.c.id,
        _customers.c.partner_id,
        _customers.c.first_purchase_at,
        _customers.c.attributed_via,
        _customers.c.click_id,
        _customers.c.attributed_at,
    )
    .where(_customers.c.external_id == sa.bindparam("external_id"))
    .with_for_update()
)
_INSERT_PURCHASE = {
    name: dialect.insert(_purchases).on_conflict_do_nothing(index_elements=["external_id"]).returning(_purchases.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass(frozen=True, slots=True)
class _Buyer:
    """The customer of a purchase, as locked for it."""

    id: int
    partner_id: int | None
    first_purchase_at: datetime | None
    attributed_via: str | None
    click_id: str | None
    attributed_at: datetime | None


async def record_purchase(session: AsyncSession, event: PurchaseIn, *, now: datetime) -> EventResult:
    """Record the purchase and, in the same transaction, the commissions of up to three levels.

    The busiest write of the platform (benchmark 2): statements built once, Core rows instead of ORM objects,
    the chain read in one query; the rollups are counted here (`rollups.service`), not by the ORM listeners."""

    async def work() -> EventResult:
        customer = await _lock_customer(session, event.customer)
        if customer is None:
            raise NotFound(
                f"customer {event.customer!r} is unknown: send its signup first, then this purchase again",
                field="customer",
            )
        occurred_at = event.occurred_at or now
        purchase_id = await _insert_purchase(session, event, customer.id, customer.partner_id, occurred_at, now)
        first_purchase_at = await _move_first_purchase(session, customer, occurred_at)
        level1_code: str | None = None
        created: list[commissions.NewCommission] = []
        if customer.partner_id is not None:
            sale = Sale(
                purchase_id=purchase_id,
                external_id=event.external_id,
                customer_id=customer.id,
                partner_id=customer.partner_id,
                amount=event.amount,
                currency=event.currency,
                occurred_at=occurred_at,
                first_purchase_at=first_purchase_at,
            )
            level1_code, created = await _pay_partners(session, sale, now)
        body = PurchaseOut(
            purchase_id=purchase_id,
            external_id=event.external_id,
            customer_id=customer.id,
            partner=level1_code,
            amount=event.amount,
            currency=event.currency,
            first_purchase=customer.first_purchase_at is None,
            commissions=[
                CommissionOut(
                    partner=c.referral_code, level=c.level, amount=c.amount, currency=c.currency, status=c.status
                )
                for c in created
            ],
        )
        return _answer(201, body)

    return await _once(session, "purchase", event, work)


async def _lock_customer(session: AsyncSession, external_id: str) -> _Buyer | None:
    """Locked: its purchases are numbered one after the other (first purchase, duration rules)."""
    row = (await session.execute(_LOCK_CUSTOMER, {"external_id": external_id})).one_or_none()
    return _Buyer(*row) if row is not None else None


async def _move_first_purchase(session: AsyncSession, customer: _Buyer, occurred_at: datetime) -> datetime:
    """The customer's first purchase, this one included (moved earlier by a late-sent older purchase); a
    customer who signed up through one of its partner's links becomes, at its first purchase, a buyer of it."""
    if customer.first_purchase_at is not None and customer.first_purchase_at <= occurred_at:
        return customer.first_purchase_at
    # ORM-enabled, so that a Customer loaded in this session follows.
    await session.execute(sa.update(Customer).where(Customer.id == customer.id).values(first_purchase_at=occurred_at))
    if customer.first_purchase_at is None and customer.attributed_via == "click":
        await _count_link_buyer(session, customer.partner_id, customer.click_id, customer.attributed_at)
    return occurred_at


async def _pay_partners(
    session: AsyncSession, sale: Sale, now: datetime
) -> tuple[str, list[commissions.NewCommission]]:
    """Count the sale in the partner's rollups and pay its chain: (level 1's referral code, the commissions)."""
    rollups.count_purchase(
        session.sync_session,
        partner_id=sale.partner_id,
        customer_id=sale.customer_id,
        occurred_at=sale.occurred_at,
        currency=sale.currency,
        amount=sale.amount,
    )
    chain = await load_chain(session, sale.partner_id, currency=sale.currency, at=sale.occurred_at)
    return chain.members[0].referral_code, await commissions.pay_commissions(session, sale, chain, now=now)


async def _insert_purchase(
    session: AsyncSession,
    event: PurchaseIn,
    customer_id: int,
    partner_id: int | None,
    occurred_at: datetime,
    now: datetime,
) -> int:
    inserted = await session.execute(
        _INSERT_PURCHASE[session.get_bind().dialect.name],
        {
            "external_id": event.external_id,
            "customer_id": customer_id,
            "partner_id": partner_id,
            "amount": event.amount,
            "currency": event.currency,
            "product": event.product,
            "occurred_at": occurred_at,
            "refunded_amount": 0,
            "status": "completed",
            "created_at": now,
        },
    )
    purchase_id = inserted.scalar_one_or_none()
    if purchase_id is None:
        raise Conflict(f"purchase {event.external_id!r} already exists", field="external_id")
    return int(purchase_id)


async def _count_link_buyer(
    session: AsyncSession, partner_id: int | None, click_id: str | None, attributed_at: datetime | None
) -> None:
    """A customer who signed up through one of its partner's links and buys for the first time becomes one of
    that link's buyers."""
    if partner_id is None or click_id is None or attributed_at is None:
        return
    link_id = await session.scalar(rollups.link_of_click(click_id, partner_id))
    if link_id is not None:
        rollups.count_link_buyer(session.sync_session, link_id, attributed_at)


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
