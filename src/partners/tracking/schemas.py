"""The tracking API's words: links and their stats, coupons, customers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SLUG_PATTERN = r"^[a-z0-9-]{3,64}$"
COUPON_PATTERN = r"^[A-Za-z0-9_-]{3,64}$"

UtmValue = Annotated[str | None, Field(default=None, max_length=200)]
SubIdKey = Literal["sub1", "sub2", "sub3", "sub4", "sub5"]
SubIdValue = Annotated[str, Field(max_length=200)]


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    destination_url: str = Field(min_length=1, max_length=2000)
    utm_source: UtmValue
    utm_medium: UtmValue
    utm_campaign: UtmValue
    utm_term: UtmValue
    utm_content: UtmValue
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN, description="custom code: [a-z0-9-]{3,64}")
    sub_ids: dict[SubIdKey, SubIdValue] = Field(
        default_factory=dict, description="up to five values (sub1..sub5) kept with the link for your reports"
    )


class LinkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    short_url: str
    destination_url: str
    final_url_preview: str = Field(description="where a click lands; each click also adds its own click_id")
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    sub_ids: dict[str, str]
    active: bool
    created_at: datetime


class LinkStats(BaseModel):
    clicks: int = Field(description="clicks by people (bots excluded)")
    unique_clicks: int = Field(description="distinct visitors (hashed IP) among those clicks")
    bot_clicks: int
    signups: int = Field(description="customers attributed through this link's clicks")
    customers: int = Field(description="those signups who have purchased")


class LinkWithStats(LinkOut):
    stats: LinkStats


class LinkPage(BaseModel):
    items: list[LinkWithStats]
    total: int
    limit: int
    offset: int


class CouponCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    partner_id: int
    code: str = Field(pattern=COUPON_PATTERN, description="stored upper-case; matched case-insensitively")


class CouponOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    partner_id: int
    active: bool
    created_at: datetime


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    partner_id: int
    reason: str = Field(min_length=3, max_length=500)


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str
    program_id: int | None
    partner_id: int | None
    attributed_via: str | None
    attributed_at: datetime | None
    click_id: str | None
