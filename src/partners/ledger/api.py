"""Read-only staff view of the ledger: an owner's balances and an account's entries. Nothing here writes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from partners.identity.deps import require_staff
from partners.identity.principals import StaffPrincipal
from partners.kit.deps import SessionDep
from partners.ledger import service
from partners.ledger.models import LedgerEntry, LedgerTransaction
from partners.ledger.schemas import BalanceOut

router = APIRouter(prefix="/admin/ledger", tags=["ledger"])
LedgerReader = Annotated[StaffPrincipal, Depends(require_staff("ledger:read"))]


class EntryOut(BaseModel):
    entry_id: int
    transaction_id: int
    kind: str
    description: str
    amount: int
    currency: str
    created_at: datetime
    reverses_id: int | None


@router.get("/balances", response_model=list[BalanceOut])
async def owner_balances(
    session: SessionDep,
    staff: LedgerReader,
    owner: Annotated[str, Query(description="e.g. partner:42 or platform", max_length=64)],
) -> list[BalanceOut]:
    return [
        BalanceOut(
            account_id=account.id,
            owner=account.owner,
            kind=account.kind,
            currency=account.currency,
            posted=balance.posted,
            pending_debits=balance.pending_debits,
            pending_credits=balance.pending_credits,
            available=balance.available,
        )
        for account, balance in await service.owner_balances(session, owner)
    ]


@router.get("/accounts/{account_id}/entries", response_model=list[EntryOut])
async def account_entries(
    account_id: int,
    session: SessionDep,
    staff: LedgerReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(description="cursor: entries older than this entry id")] = None,
) -> list[EntryOut]:
    await service.get_account(session, account_id)
    query = (
        sa.select(LedgerEntry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(LedgerEntry.id < before_id)
    rows = (await session.execute(query)).all()
    return [
        EntryOut(
            entry_id=entry.id,
            transaction_id=transaction.id,
            kind=transaction.kind,
            description=transaction.description,
            amount=entry.amount,
            currency=entry.currency,
            created_at=transaction.created_at,
            reverses_id=transaction.reverses_id,
        )
        for entry, transaction in rows
    ]
