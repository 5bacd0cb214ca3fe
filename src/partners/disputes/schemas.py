"""The disputes API's words. Amounts are integer minor units of `currency`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from partners.events.schemas import KNOWN_CURRENCIES, Product

DisputeKind = Literal["wrong_amount", "reversed_unfairly", "other", "missing_conversion"]
DisputeStatus = Literal["open", "awaiting_partner", "awaiting_staff", "accepted", "rejected"]
QueueSort = Literal["newest", "oldest", "waiting"]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_AMOUNT = 10**15

Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]
Reference = Annotated[str, Field(min_length=1, max_length=128)]
MessageBody = Annotated[str, Field(min_length=1, max_length=5000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _known_currency(code: str) -> str:
    code = code.upper()
    if code not in KNOWN_CURRENCIES:
        raise ValueError(f"{code!r} is not a known ISO-4217 currency code")
    return code


CurrencyCode = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_known_currency)]


class DisputeIn(Strict):
    """A dispute on one of the caller's commissions (wrong_amount, reversed_unfairly, other: `commission_id`
    required, `claimed_amount` what the partner says it is still owed, optional), or a missing conversion
    (`order_reference` and `order_date` required; `customer_external_id`, `claimed_amount` and `currency`
    optional — the currency defaults to the program's). Evidence files are uploaded afterwards."""

    kind: DisputeKind
    message: MessageBody
    commission_id: int | None = Field(default=None, gt=0)
    claimed_amount: Amount | None = None
    currency: CurrencyCode | None = None
    order_reference: Reference | None = None
    order_date: date | None = None
    customer_external_id: Reference | None = None


class MessageIn(Strict):
    body: MessageBody


class ResolveIn(Strict):
    """`reject` needs a `reason`. `accept` names its remedy:
    - `adjustment`: `amount` (default: the claimed amount) paid to the partner's available balance — on the
      disputed commission (a commission adjustment) or, for a missing conversion, straight from the platform;
    - `conversion` (missing conversions only): a purchase of `purchase_amount` by the customer
      (`customer_external_id`, default: the claimed one), bound to the partner, and its commissions.
    `reason` is kept as the decision's note either way."""

    decision: Literal["accept", "reject"]
    remedy: Literal["adjustment", "conversion"] | None = None
    reason: str = Field(default="", max_length=2000)
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    purchase_amount: Amount | None = None
    customer_external_id: Reference | None = None
    occurred_at: AwareDatetime | None = None
    product: Product = "credits"


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    author_kind: str
    body: str
    created_at: datetime


class StaffMessageOut(MessageOut):
    author_id: str


class EvidenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by_kind: str
    created_at: datetime


class SlaOut(BaseModel):
    """Timers, in whole seconds, as of the response. `age_seconds` runs until the decision.
    `waiting_on_staff_seconds` counts from the partner's oldest unanswered word while the dispute waits on
    staff; past `target_hours` it is `breached`."""

    target_hours: int
    age_seconds: int
    waiting_on_staff_seconds: int | None
    since_last_staff_reply_seconds: int | None
    due_at: datetime | None
    breached: bool


class DisputeOut(BaseModel):
    id: int
    partner_id: int
    kind: str
    status: str
    commission_id: int | None
    claimed_amount: int | None
    currency: str | None
    order_reference: str | None
    order_date: date | None
    customer_external_id: str | None
    created_at: datetime
    last_partner_message_at: datetime | None
    last_staff_reply_at: datetime | None
    resolution: str | None
    resolution_reason: str
    resolved_at: datetime | None
    adjustment_amount: int | None
    ledger_transaction_id: int | None
    commission_adjustment_id: int | None
    purchase_id: int | None
    sla: SlaOut


class DisputeDetail(DisputeOut):
    messages: list[MessageOut]
    evidence: list[EvidenceOut]
    commission_ids: list[int]


class StaffDisputeDetail(DisputeOut):
    resolved_by: str | None
    messages: list[StaffMessageOut]
    evidence: list[EvidenceOut]
    commission_ids: list[int]


class DisputePage(BaseModel):
    items: list[DisputeOut]
    total: int
    limit: int
    offset: int
