from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from partners.identity.passwords import MAX_PASSWORD_LENGTH

# --- registration, verification, login -----------------------------------------------------------------


class RegistrationIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    # Checked by identity.passwords.validate_password (the one password rule), so only the upper bound here.
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    website: str = Field(default="", max_length=500)
    audience: str = Field(default="", max_length=5000)
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. IN", max_length=8)
    program: str | None = Field(default=None, max_length=64, description="program slug; default program if omitted")
    recruiter_code: str | None = Field(default=None, max_length=32)
    accept_agreement: int | None = Field(
        default=None, description="the agreement version accepted (required when the program has one)"
    )


class TokenIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class PartnerLoginIn(BaseModel):
    # A plain string, not EmailStr: a malformed address gets the same 401 as a wrong password.
    email: str = Field(max_length=320)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class PasswordResetRequestIn(BaseModel):
    email: str = Field(max_length=320)


class PasswordResetConfirmIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


# --- partners --------------------------------------------------------------------------------------------


class TierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    name: str
    rank: int


class PartnerOut(BaseModel):
    id: int
    program_id: int
    kind: str
    status: str
    status_reason: str
    name: str
    email: str
    website: str
    audience: str
    country: str | None
    referral_code: str
    referral_link: str
    external_id: str | None
    parent_id: int | None
    tier: TierOut
    email_verified: bool
    approved_at: datetime | None
    created_at: datetime


class PartnerLoginOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    csrf_token: str
    expires_in: int = Field(description="seconds until the session expires")
    partner: PartnerOut


class MeOut(BaseModel):
    partner: PartnerOut
    can_earn: bool
    agreement_required: bool = Field(description="true while the program's current agreement is not accepted")


class VerifiedOut(BaseModel):
    email_verified: bool
    status: str


# --- staff decisions -------------------------------------------------------------------------------------


class DecisionIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class ApplicationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    program_id: int
    name: str
    email: str
    website: str
    audience: str
    country: str | None
    parent_id: int | None
    external_id: str | None
    email_verified_at: datetime | None
    created_at: datetime


# --- host enrolment --------------------------------------------------------------------------------------


class EnrolIn(BaseModel):
    external_id: str = Field(min_length=1, max_length=128, description="the host's user id")
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    recruiter_code: str | None = Field(default=None, max_length=32)


class BalanceOut(BaseModel):
    kind: str
    currency: str
    posted: int
    available: int
    pending_debits: int
    pending_credits: int


class HostPartnerOut(BaseModel):
    id: int
    external_id: str
    status: str
    email_verified: bool
    referral_code: str
    referral_link: str
    tier: TierOut
    balances: list[BalanceOut]


# --- agreements ------------------------------------------------------------------------------------------


class AgreementPublishIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=200_000)


class AgreementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    program_id: int
    version: int
    title: str
    body: str
    created_at: datetime


class AgreementAcceptIn(BaseModel):
    version: int


class AcceptanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    agreement_version_id: int
    accepted_at: datetime
    ip: str
    user_agent: str


class AgreementStatusOut(BaseModel):
    current: AgreementOut | None
    accepted: bool
    acceptance: AcceptanceOut | None


# --- the tree --------------------------------------------------------------------------------------------


class MoneyOut(BaseModel):
    currency: str
    amount: int


class ReferralNode(BaseModel):
    id: int
    name: str
    referral_code: str
    status: str
    tier: str
    level: int = Field(description="1 = recruited by you, 2 = by one of yours, 3 = one further")
    joined_at: datetime
    clicks: int
    customers: int
    revenue_referred: list[MoneyOut] = Field(description="their customers' purchases, net of refunds")
    commissions_earned: list[MoneyOut] = Field(description="what you earned from them, net of reversals")
    children: list[ReferralNode]


class ReferralsOut(BaseModel):
    depth: int
    referrals: list[ReferralNode]
