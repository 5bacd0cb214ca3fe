"""Session events: the credits `ledger.service.post_each` deferred are added to their balance rows when the root
transaction commits, and forgotten when it ends otherwise. Loaded with the models (`partners.db.registry`),
before the rollups' listeners, so every committing transaction locks balance rows first, then rollup rows."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from partners.ledger import service


@event.listens_for(Session, "before_commit")
def _apply_at_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:
        service.apply_deferred_credits(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(service.DEFERRED_CREDITS_KEY, None)
