"""The commissions API's words."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CommissionStatus = Literal["pending", "approved", "paid", "reversed", "rejected"]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class CommissionOut(BaseModel):
    """`amount` was earned; `reversed_amount` was taken back since (refunds, chargebacks, rejection)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    purchase_id: int
    partner_id: int
    level: int
    currency: str
    base_amount: int
    rate_bps: int
    amount: int
    reversed_amount: int
    status: str
    payable_at: datetime
    approved_at: datetime | None
    status_reason: str
    created_at: datetime


class CommissionPage(BaseModel):
    items: list[CommissionOut]
    total: int
    limit: int
    offset: int


class AdjustmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    commission_id: int
    amount: int
    reason: str
    staff_id: str
    ledger_transaction_id: int
    created_at: datetime


class CommissionDetail(CommissionOut):
    adjustments: list[AdjustmentOut]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RejectIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class AdjustIn(Strict):
    amount: int = Field(strict=True, ge=-(10**15), le=10**15)
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=100)
