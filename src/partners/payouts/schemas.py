"""The payouts API's words. Amounts are integer minor units of `currency`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PayoutStatus = Literal["pending", "processing", "paid", "failed", "returned", "cancelled"]
MethodName = Literal["platform_credit", "paypal", "sepa", "ach", "wise", "crypto"]
CurrencyCode = str
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_AMOUNT = 10**15


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MethodIn(Strict):
    method: MethodName
    details: dict[str, str] = Field(default_factory=dict)


class ConfirmIn(Strict):
    token: str = Field(min_length=10, max_length=200)


class MethodOut(BaseModel):
    """Details are masked; `ready` says whether payouts can go to this method now."""

    model_config = ConfigDict(from_attributes=True)

    currency: str
    method: str
    details: dict[str, str]
    confirmed: bool
    cooldown_until: datetime | None
    ready: bool
    problem: str | None
    updated_at: datetime


class PayoutRequestIn(Strict):
    amount: int = Field(strict=True, gt=0, le=MAX_AMOUNT)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")


class PayoutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    partner_id: int
    currency: str
    amount: int
    method: str
    details: dict[str, str] = Field(validation_alias="details_masked")
    status: str
    source: str
    batch_id: int | None
    reference: str | None
    failure_reason: str
    created_at: datetime
    processing_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None


class PayoutPage(BaseModel):
    items: list[PayoutOut]
    total: int
    limit: int
    offset: int


class BalanceOut(BaseModel):
    currency: str
    available: int
    minimum: int


class BatchIn(Strict):
    method: MethodName | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")


class BatchTotalOut(BaseModel):
    method: str
    currency: str
    count: int
    amount: int


class BatchFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    method: str
    media_type: str
    size: int
    created_at: datetime


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    method_filter: str | None
    currency_filter: str | None
    created_by: str
    required_approvals: int
    approved_by: list[str]
    approved_at: datetime | None
    executed_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    totals: list[BatchTotalOut]
    files: list[BatchFileOut]


class BatchPage(BaseModel):
    items: list[BatchOut]
    total: int
    limit: int
    offset: int


class BatchDetail(BatchOut):
    payouts: list[PayoutOut]


class ConfirmationsOut(BaseModel):
    paid: list[int]
    failed: list[int]
    returned: list[int]
    unchanged: list[int]
