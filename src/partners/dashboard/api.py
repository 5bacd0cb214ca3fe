"""The partner dashboard: `GET /affiliate/dashboard` for the partner, and the same for staff."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from partners.affiliates import service as affiliates
from partners.affiliates.deps import PartnerDep
from partners.dashboard import service
from partners.dashboard.schemas import DashboardOut
from partners.db.types import utcnow
from partners.identity.deps import StaffPrincipal, require_staff
from partners.kit.deps import SessionDep

router = APIRouter(tags=["dashboard"])

Period = Literal["7d", "30d", "90d", "365d"]
FromQuery = Annotated[date | None, Query(alias="from", description="first UTC day (default: `period` before `to`)")]
ToQuery = Annotated[date | None, Query(alias="to", description="last UTC day, included (default: today)")]
PeriodQuery = Annotated[Period | None, Query(description="length when `from` is not given (default 30d)")]


@router.get("/affiliate/dashboard", response_model=DashboardOut)
async def partner_dashboard(
    principal: PartnerDep,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    period: PeriodQuery = None,
) -> DashboardOut:
    """The logged-in partner's numbers over the period."""
    partner = await affiliates.get_partner(session, principal.partner_id)
    now = utcnow()
    window = service.resolve_window(first=start, last=end, period=period, today=now.date())
    return await service.partner_dashboard(session, partner, window, now=now)


@router.get("/admin/partners/{partner_id}/dashboard", response_model=DashboardOut)
async def staff_partner_dashboard(
    partner_id: int,
    _staff: Annotated[StaffPrincipal, Depends(require_staff("partners:read"))],
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    period: PeriodQuery = None,
) -> DashboardOut:
    """Any partner's dashboard, for staff."""
    partner = await affiliates.get_partner(session, partner_id)
    now = utcnow()
    window = service.resolve_window(first=start, last=end, period=period, today=now.date())
    return await service.partner_dashboard(session, partner, window, now=now)
