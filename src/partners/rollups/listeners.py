"""ORM events that keep the rollups in step with purchases, customers and commissions, whoever writes them.

Mapper events see each inserted or updated row (with its attribute history) and add deltas to the session's
pending rollups; ORM bulk statements (an `insert(Click)` of many rows, an `update(Commission)`) are seen in
`do_orm_execute`. `before_commit` of the root transaction writes what was collected, in the same transaction;
a rolled-back savepoint or transaction drops its part. Loaded with the models (`partners.db.registry`), so
every process that opens a `Database` has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import Mapper, ORMExecuteState, PassiveFlag, Session, SessionTransaction, attributes

from partners.commissions.models import Commission
from partners.events.models import Purchase
from partners.rollups import service
from partners.tracking.models import Click, Customer

_COMMISSION_STATE = (
    Commission.id,
    Commission.partner_id,
    Commission.purchase_id,
    Commission.currency,
    Commission.status,
    Commission.level,
    Commission.amount,
    Commission.reversed_amount,
)


def _session_of(target: Any) -> Session | None:
    return sa.inspect(target).session  # type: ignore[no-any-return]


def _changes(target: Any, names: tuple[str, ...]) -> bool:
    return any(attributes.get_history(target, name, PassiveFlag.PASSIVE_NO_INITIALIZE).has_changes() for name in names)


def _stored(connection: Connection, target: Any, columns: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row as it is in the database before this flush's UPDATE (`before_update`): an attribute's old value
    is not always loaded (expired after a rollback, never set before the INSERT), so it is read."""
    model = type(target)
    return tuple(connection.execute(sa.select(*columns).where(model.id == target.id)).one())


# --- clicks (the recorder writes with Core and calls `record_clicks` itself) -----------------------------


@event.listens_for(Click, "after_insert")
def _click_inserted(_mapper: Mapper[Any], _connection: Connection, click: Click) -> None:
    session = _session_of(click)
    if session is not None:
        row = {name: getattr(click, name) for name in ("partner_id", "link_id", "occurred_at", "is_bot", "ip_hash")}
        service.record_clicks(session, [row])


# --- purchases -----------------------------------------------------------------------------------------


def _purchase_delta(session: Session, partner_id: int | None, values: tuple[Any, ...], sign: int) -> None:
    if partner_id is None:
        return
    occurred_at, currency, amount, refunded = values
    row = service.pending(session).revenue[(partner_id, service.utc_day(occurred_at), currency)]
    row[0] += sign
    row[1] += sign * amount
    row[2] += sign * refunded


@event.listens_for(Purchase, "after_insert")
def _purchase_inserted(_mapper: Mapper[Any], _connection: Connection, purchase: Purchase) -> None:
    session = _session_of(purchase)
    if session is None or purchase.partner_id is None:
        return
    service.count_purchase(
        session,
        partner_id=purchase.partner_id,
        customer_id=purchase.customer_id,
        occurred_at=purchase.occurred_at,
        currency=purchase.currency,
        amount=purchase.amount,
        refunded=purchase.refunded_amount,
    )


_PURCHASE_FIELDS = ("partner_id", "occurred_at", "currency", "amount", "refunded_amount", "customer_id")
_PURCHASE_STATE = (Purchase.id, *(getattr(Purchase, name) for name in _PURCHASE_FIELDS))


def _purchase_moved(session: Session, old: tuple[Any, ...], new: tuple[Any, ...]) -> None:
    """A purchase changed from `old` to `new` (each as `_PURCHASE_FIELDS`): its revenue moves, and its
    customer's latest paid day is recounted for the partner before and after (a refund can take it back)."""
    _purchase_delta(session, old[0], old[1:5], -1)
    _purchase_delta(session, new[0], new[1:5], +1)
    deltas = service.pending(session)
    for partner_id, customer_id in {(old[0], old[5]), (new[0], new[5])}:
        if partner_id is not None:
            deltas.recheck_buyer(partner_id, customer_id)


def _sale_day_moved(session: Session, executor: Session | Connection, purchase_id: int, old: date, new: date) -> None:
    """The purchase's commissions count on the sale's day: they move with it."""
    if old != new:
        for _day, state in _commission_states(executor, Commission.purchase_id == purchase_id).values():
            _commission_delta(session, old, state, -1)
            _commission_delta(session, new, state, +1)


@event.listens_for(Purchase, "before_update")
def _purchase_updated(_mapper: Mapper[Any], connection: Connection, purchase: Purchase) -> None:
    session = _session_of(purchase)
    if session is None or not _changes(purchase, _PURCHASE_FIELDS):
        return
    old = _stored(connection, purchase, _PURCHASE_STATE[1:])
    _purchase_moved(session, old, tuple(getattr(purchase, name) for name in _PURCHASE_FIELDS))
    _sale_day_moved(session, connection, purchase.id, service.utc_day(old[1]), service.utc_day(purchase.occurred_at))


# --- customers (signups, per partner and per link) -------------------------------------------------------

_CUSTOMER_FIELDS = ("partner_id", "attributed_via", "click_id", "attributed_at", "first_purchase_at")


def _signup(session: Session, partner_id: int | None, attributed_at: datetime | None, sign: int) -> None:
    if partner_id is not None and attributed_at is not None:
        service.pending(session).days[(partner_id, service.utc_day(attributed_at))][2] += sign


def _link_signup(session: Session, connection: Connection, values: tuple[Any, ...], sign: int) -> None:
    """A customer attributed through a click of one of its partner's links counts for that link (and, once
    it has bought, as one of the link's buyers)."""
    partner_id, attributed_via, click_id, attributed_at, first_purchase_at = values
    if partner_id is None or attributed_via != "click" or click_id is None or attributed_at is None:
        return
    link_id = connection.execute(service.link_of_click(click_id, partner_id)).scalar()
    if link_id is None:
        return
    row = service.pending(session).link_days[(link_id, service.utc_day(attributed_at))]
    row[2] += sign
    row[3] += sign if first_purchase_at is not None else 0


@event.listens_for(Customer, "after_insert")
def _customer_inserted(_mapper: Mapper[Any], connection: Connection, customer: Customer) -> None:
    session = _session_of(customer)
    if session is not None:
        _signup(session, customer.partner_id, customer.attributed_at, +1)
        _link_signup(session, connection, tuple(getattr(customer, name) for name in _CUSTOMER_FIELDS), +1)


@event.listens_for(Customer, "before_update")
def _customer_updated(_mapper: Mapper[Any], connection: Connection, customer: Customer) -> None:
    session = _session_of(customer)
    if session is None or not _changes(customer, _CUSTOMER_FIELDS):
        return
    old = _stored(connection, customer, tuple(getattr(Customer, name) for name in _CUSTOMER_FIELDS))
    new = tuple(getattr(customer, name) for name in _CUSTOMER_FIELDS)
    _signup(session, old[0], old[3], -1)
    _signup(session, new[0], new[3], +1)
    _link_signup(session, connection, old, -1)
    _link_signup(session, connection, new, +1)


# --- commissions ---------------------------------------------------------------------------------------


def _sale_day(session: Session, connection: Connection, purchase_id: int) -> date:
    """The sale's UTC day: from the purchase in the session if it is there, else from the database."""
    purchase = session.identity_map.get(sa.inspect(Purchase).identity_key_from_primary_key((purchase_id,)))
    if isinstance(purchase, Purchase):
        return service.utc_day(purchase.occurred_at)
    occurred_at = connection.execute(sa.select(Purchase.occurred_at).where(Purchase.id == purchase_id)).scalar_one()
    return service.utc_day(occurred_at)


def _commission_delta(session: Session, day: date, state: tuple[Any, ...], sign: int) -> None:
    partner_id, currency, status, level, amount, reversed_amount = state
    row = service.pending(session).commissions[(partner_id, day, currency, status, level)]
    row[0] += sign
    row[1] += sign * amount
    row[2] += sign * reversed_amount


_COMMISSION_FIELDS = ("partner_id", "currency", "status", "level", "amount", "reversed_amount")


@event.listens_for(Commission, "after_insert")
def _commission_inserted(_mapper: Mapper[Any], connection: Connection, commission: Commission) -> None:
    session = _session_of(commission)
    if session is None:
        return
    state = tuple(getattr(commission, name) for name in _COMMISSION_FIELDS)
    _commission_delta(session, _sale_day(session, connection, commission.purchase_id), state, +1)


@event.listens_for(Commission, "before_update")
def _commission_updated(_mapper: Mapper[Any], connection: Connection, commission: Commission) -> None:
    session = _session_of(commission)
    if session is None or not _changes(commission, (*_COMMISSION_FIELDS, "purchase_id")):
        return
    before = _commission_states(connection, Commission.id == commission.id)
    for day, old in before.values():
        _commission_delta(session, day, old, -1)
    new = tuple(getattr(commission, name) for name in _COMMISSION_FIELDS)
    _commission_delta(session, _sale_day(session, connection, commission.purchase_id), new, +1)


def _commission_states(executor: Session | Connection, where: Any) -> dict[int, tuple[date, tuple[Any, ...]]]:
    """(sale day, (partner_id, currency, status, level, amount, reversed_amount)) of each commission, locked."""
    rows = executor.execute(
        sa.select(*_COMMISSION_STATE, Purchase.occurred_at)
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .where(where)
        .with_for_update(of=Commission)
    )
    return {row[0]: (service.utc_day(row[-1]), tuple(row[1:2]) + tuple(row[3:-1])) for row in rows}


def _bulk_commission_update(state: ORMExecuteState) -> Result[Any]:
    """An ORM `update(Commission)`: read the rows it will change (locked), run it, read them again."""
    session = state.session
    before = _commission_states(session, state.statement.whereclause)  # type: ignore[attr-defined]
    result = state.invoke_statement()
    if before:
        after = _commission_states(session, Commission.id.in_(list(before)))
        for commission_id, (day, old) in before.items():
            _commission_delta(session, day, old, -1)
            new_day, new = after[commission_id]
            _commission_delta(session, new_day, new, +1)
    return result


def _bulk_purchase_update(state: ORMExecuteState) -> Result[Any]:
    """An ORM `update(Purchase)`: read the rows it will change (locked), run it, read them again."""
    session = state.session
    where = state.statement.whereclause  # type: ignore[attr-defined]
    query = sa.select(*_PURCHASE_STATE).with_for_update()
    before = {row[0]: tuple(row[1:]) for row in session.execute(query if where is None else query.where(where))}
    result = state.invoke_statement()
    if before:
        after = session.execute(sa.select(*_PURCHASE_STATE).where(Purchase.id.in_(list(before)))).all()
        for row in after:
            old, new = before[row[0]], tuple(row[1:])
            _purchase_moved(session, old, new)
            _sale_day_moved(session, session, row[0], service.utc_day(old[1]), service.utc_day(new[1]))
    return result


# --- the session ---------------------------------------------------------------------------------------


def _targets(state: ORMExecuteState, model: type[Any]) -> bool:
    return any(mapper.class_ is model for mapper in state.all_mappers)


@event.listens_for(Session, "do_orm_execute")
def _bulk_statements(state: ORMExecuteState) -> Result[Any] | None:
    if state.is_insert and _targets(state, Click):
        parameters = state.parameters
        rows = parameters if isinstance(parameters, list) else [parameters] if parameters else []
        service.record_clicks(state.session, [row for row in rows if isinstance(row, Mapping)])
        return None
    if state.is_update and _targets(state, Commission):
        return _bulk_commission_update(state)
    if state.is_update and _targets(state, Purchase):
        return _bulk_purchase_update(state)
    return None


@event.listens_for(Session, "before_commit")
def _write_at_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint is released: its deltas go on with the enclosing transaction
    session.flush()  # the last changes, and their deltas
    deltas = service.take_pending(session)
    if not deltas.empty:
        service.write(session, deltas)


@event.listens_for(Session, "after_soft_rollback")
def _drop_at_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    service.drop_rolled_back(session, previous_transaction)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(service.PENDING_KEY, None)
