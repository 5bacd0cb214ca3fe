"""The ledger's words: what callers pass in and read back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from partners.ledger.models import LedgerAccount


@dataclass(frozen=True, slots=True)
class AccountRef:
    """What posting to an account needs of it, read along with other rows (the purchase path's chain query)
    instead of loading the ORM object."""

    id: int
    kind: str
    currency: str
    may_go_negative: bool
    kept_as_sum: bool


@dataclass(frozen=True)
class Posting:
    """One leg of a journal transaction: `amount` is signed (credit positive) in the account's currency."""

    account: LedgerAccount | AccountRef
    amount: int


@dataclass(frozen=True)
class NewTransaction:
    """A journal transaction to write (`ledger.service.post_each`)."""

    idempotency_key: str
    kind: str
    postings: Sequence[Posting]
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Balance:
    account_id: int
    currency: str
    posted: int
    pending_debits: int
    pending_credits: int

    @property
    def available(self) -> int:
        """What may be spent now: posted minus what holds have reserved away."""
        return self.posted - self.pending_debits


class BalanceOut(BaseModel):
    account_id: int
    owner: str
    kind: str
    currency: str
    posted: int
    pending_debits: int
    pending_credits: int
    available: int
