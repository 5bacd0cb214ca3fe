"""Commissions: the partner's own list, and the staff's list, approval, rejection and adjustments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from partners.affiliates.deps import PartnerDep
from partners.audit.service import Actor
from partners.commissions import service
from partners.commissions.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AdjustIn,
    AdjustmentOut,
    CommissionDetail,
    CommissionOut,
    CommissionPage,
    CommissionStatus,
    RejectIn,
)
from partners.db.types import utcnow
from partners.identity.deps import StaffPrincipal, require_staff
from partners.kit.deps import SessionDep

router = APIRouter()

CommissionReader = Annotated[StaffPrincipal, Depends(require_staff("commissions:read"))]
CommissionWriter = Annotated[StaffPrincipal, Depends(require_staff("commissions:write"))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0)]
Level = Annotated[int | None, Query(ge=1, le=3)]


def _actor(staff: StaffPrincipal) -> Actor:
    return Actor("staff", str(staff.user_id))


async def _page(session: SessionDep, where: service.CommissionFilter, *, limit: int, offset: int) -> CommissionPage:
    rows, total = await service.list_commissions(session, where, limit=limit, offset=offset)
    return CommissionPage(
        items=[CommissionOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
    )


@router.get("/affiliate/commissions", tags=["affiliates"])
async def my_commissions(
    session: SessionDep,
    partner: PartnerDep,
    status: CommissionStatus | None = None,
    level: Level = None,
    date_from: Annotated[datetime | None, Query(alias="from")] = None,
    date_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> CommissionPage:
    """The caller's commissions, newest first; `from` (inclusive) and `to` (exclusive) bound creation time."""
    where = service.CommissionFilter(
        partner_id=partner.partner_id, status=status, level=level, created_from=date_from, created_to=date_to
    )
    return await _page(session, where, limit=limit, offset=offset)


@router.get("/admin/commissions", tags=["commissions"])
async def list_commissions(
    session: SessionDep,
    _staff: CommissionReader,
    partner_id: int | None = None,
    purchase_id: int | None = None,
    status: CommissionStatus | None = None,
    level: Level = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    date_from: Annotated[datetime | None, Query(alias="from")] = None,
    date_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> CommissionPage:
    where = service.CommissionFilter(
        partner_id=partner_id,
        purchase_id=purchase_id,
        status=status,
        level=level,
        currency=currency,
        created_from=date_from,
        created_to=date_to,
    )
    return await _page(session, where, limit=limit, offset=offset)


async def _detail(session: SessionDep, commission_id: int) -> CommissionDetail:
    commission = await service.get_commission(session, commission_id)
    adjustments = await service.adjustments_for(session, commission_id)
    return CommissionDetail(
        **CommissionOut.model_validate(commission).model_dump(),
        adjustments=[AdjustmentOut.model_validate(adjustment) for adjustment in adjustments],
    )


@router.get("/admin/commissions/{commission_id}", tags=["commissions"])
async def get_commission(commission_id: int, session: SessionDep, _staff: CommissionReader) -> CommissionDetail:
    return await _detail(session, commission_id)


@router.post("/admin/commissions/{commission_id}/approve", tags=["commissions"])
async def approve_commission(commission_id: int, session: SessionDep, staff: CommissionWriter) -> CommissionOut:
    commission = await service.approve_now(session, _actor(staff), commission_id, now=utcnow())
    return CommissionOut.model_validate(commission)


@router.post("/admin/commissions/{commission_id}/reject", tags=["commissions"])
async def reject_commission(
    commission_id: int, body: RejectIn, session: SessionDep, staff: CommissionWriter
) -> CommissionOut:
    commission = await service.reject(session, _actor(staff), commission_id, reason=body.reason)
    return CommissionOut.model_validate(commission)


@router.post(
    "/admin/commissions/{commission_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    tags=["commissions"],
)
async def adjust_commission(
    commission_id: int, body: AdjustIn, session: SessionDep, staff: CommissionWriter
) -> AdjustmentOut:
    adjustment = await service.adjust(
        session,
        _actor(staff),
        commission_id,
        amount=body.amount,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
    )
    return AdjustmentOut.model_validate(adjustment)
