"""The host events API's words: what the host sends and what it gets back."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from babel.numbers import list_currencies
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from partners.events.models import PRODUCTS

Product = Literal["sms", "whatsapp", "voice", "rental", "subscription", "credits"]
assert set(get_args(Product)) == set(PRODUCTS)

KNOWN_CURRENCIES = frozenset(list_currencies())

ExternalId = Annotated[str, Field(min_length=1, max_length=128)]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: ExternalId


class SignupIn(EventIn):
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    click_id: str | None = Field(default=None, max_length=32)
    referral_code: str | None = Field(default=None, max_length=32)
    coupon_code: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    occurred_at: AwareDatetime | None = None


class PurchaseIn(EventIn):
    customer: ExternalId
    amount: int = Field(gt=0, le=10**15, strict=True)
    currency: str = Field(min_length=3, max_length=3)
    product: Product
    occurred_at: AwareDatetime | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        code = code.upper()
        if code not in KNOWN_CURRENCIES:
            raise ValueError(f"{code!r} is not a known ISO-4217 currency code")
        return code


MAX_PURCHASES_PER_REQUEST = 100


class PurchasesIn(BaseModel):
    """Many purchases in one request (`POST /events/purchases`)."""

    model_config = ConfigDict(extra="forbid")

    events: list[PurchaseIn] = Field(min_length=1, max_length=MAX_PURCHASES_PER_REQUEST)


class RefundIn(EventIn):
    purchase_id: ExternalId
    amount: int = Field(gt=0, le=10**15, strict=True)
    reason: str = Field(default="", max_length=500)


class ChargebackIn(EventIn):
    purchase_id: ExternalId
    reason: str = Field(default="", max_length=500)


class WelcomeReward(BaseModel):
    """What the host gives the referred customer, once. `credits`: `value` minor units of `currency`, to
    credit now. `discount_percent`: `value` basis points off the first purchase, applied by the host then."""

    kind: Literal["credits", "discount_percent"]
    value: int
    currency: str | None
    apply_now: bool
    applies_to: Literal["account", "first_purchase"]


class SignupOut(BaseModel):
    customer_id: int
    external_id: str
    partner: str | None  # the attributed partner's referral code
    attributed_via: str | None
    welcome_reward: WelcomeReward | None


class CommissionOut(BaseModel):
    partner: str  # referral code
    level: int
    amount: int
    currency: str
    status: str


class PurchaseOut(BaseModel):
    purchase_id: int
    external_id: str
    customer_id: int
    partner: str | None
    amount: int
    currency: str
    first_purchase: bool
    commissions: list[CommissionOut]


class PurchaseResultOut(BaseModel):
    """One event's outcome in `POST /events/purchases`: its status as `POST /events/purchase` would have answered
    it, with the purchase (201) or the problem (4xx; its fields named `events.<index>.<field>`)."""

    external_id: str
    status: int
    purchase: PurchaseOut | None = None
    problem: dict[str, Any] | None = None


class PurchasesOut(BaseModel):
    results: list[PurchaseResultOut]  # in the order of the request's events


class ReversedCommissionOut(BaseModel):
    partner: str
    level: int
    currency: str
    amount: int
    reversed_now: int
    reversed_total: int
    status: str


class RefundOut(BaseModel):
    refund_id: int
    external_id: str
    kind: Literal["refund", "chargeback"]
    purchase_id: str
    amount: int
    currency: str
    refunded_total: int
    purchase_status: str
    commissions: list[ReversedCommissionOut]
