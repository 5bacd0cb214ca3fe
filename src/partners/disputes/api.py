"""Disputes: the partner's own (open, list, thread, reply, evidence) and the staff queue (reply, resolve)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile, status
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.deps import PartnerDep
from partners.audit.service import Actor
from partners.db.types import utcnow
from partners.disputes import service
from partners.disputes.models import Dispute, DisputeEvidence
from partners.disputes.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    DisputeDetail,
    DisputeIn,
    DisputeKind,
    DisputeOut,
    DisputePage,
    DisputeStatus,
    EvidenceOut,
    MessageIn,
    MessageOut,
    QueueSort,
    ResolveIn,
    SlaOut,
    StaffDisputeDetail,
    StaffMessageOut,
)
from partners.identity.deps import StaffPrincipal, require_staff
from partners.kit.deps import SessionDep, SettingsDep
from partners.kit.errors import Unprocessable
from partners.settings import Settings

router = APIRouter()

DisputeReader = Annotated[StaffPrincipal, Depends(require_staff("disputes:read"))]
DisputeWriter = Annotated[StaffPrincipal, Depends(require_staff("disputes:write"))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0)]
Hours = Annotated[int | None, Query(ge=0, le=100_000)]
Files = Annotated[list[UploadFile], File(description="png, jpeg, pdf or txt; checked by content and size")]


def _staff(principal: StaffPrincipal) -> Actor:
    return Actor("staff", str(principal.user_id))


def _out(dispute: Dispute, settings: Settings, now: datetime) -> DisputeOut:
    sla = service.sla_of(dispute, target_hours=settings.dispute_sla_hours, now=now)
    return DisputeOut(
        id=dispute.id,
        partner_id=dispute.partner_id,
        kind=dispute.kind,
        status=dispute.status,
        commission_id=dispute.commission_id,
        claimed_amount=dispute.claimed_amount,
        currency=dispute.currency,
        order_reference=dispute.order_reference,
        order_date=dispute.order_date,
        customer_external_id=dispute.customer_external_id,
        created_at=dispute.created_at,
        last_partner_message_at=dispute.last_partner_message_at,
        last_staff_reply_at=dispute.last_staff_reply_at,
        resolution=dispute.resolution,
        resolution_reason=dispute.resolution_reason,
        resolved_at=dispute.resolved_at,
        adjustment_amount=dispute.adjustment_amount,
        ledger_transaction_id=dispute.ledger_transaction_id,
        commission_adjustment_id=dispute.commission_adjustment_id,
        purchase_id=dispute.purchase_id,
        sla=SlaOut(
            target_hours=sla.target_hours,
            age_seconds=sla.age_seconds,
            waiting_on_staff_seconds=sla.waiting_on_staff_seconds,
            since_last_staff_reply_seconds=sla.since_last_staff_reply_seconds,
            due_at=sla.due_at,
            breached=sla.breached,
        ),
    )


def _page(rows: list[Dispute], total: int, settings: Settings, *, limit: int, offset: int) -> DisputePage:
    now = utcnow()
    return DisputePage(items=[_out(row, settings, now) for row in rows], total=total, limit=limit, offset=offset)


async def _partner_detail(session: AsyncSession, settings: Settings, dispute: Dispute) -> DisputeDetail:
    return DisputeDetail(
        **_out(dispute, settings, utcnow()).model_dump(),
        messages=[MessageOut.model_validate(m) for m in await service.messages_of(session, dispute.id)],
        evidence=[EvidenceOut.model_validate(e) for e in await service.evidence_of(session, dispute.id)],
        commission_ids=await service.commission_ids_of(session, dispute),
    )


async def _staff_detail(session: AsyncSession, settings: Settings, dispute: Dispute) -> StaffDisputeDetail:
    return StaffDisputeDetail(
        **_out(dispute, settings, utcnow()).model_dump(),
        resolved_by=dispute.resolved_by,
        messages=[StaffMessageOut.model_validate(m) for m in await service.messages_of(session, dispute.id)],
        evidence=[EvidenceOut.model_validate(e) for e in await service.evidence_of(session, dispute.id)],
        commission_ids=await service.commission_ids_of(session, dispute),
    )


def _download(evidence: DisputeEvidence) -> Response:
    media_type = "text/plain; charset=utf-8" if evidence.content_type == "text/plain" else evidence.content_type
    return Response(
        content=evidence.content,
        media_type=media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(evidence.filename, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


async def _read_uploads(files: list[UploadFile], settings: Settings) -> list[service.EvidenceUpload]:
    """Read each file up to one byte past the size limit (enough to refuse it), and never more files than a
    dispute may hold, so memory stays bounded whatever is sent."""
    if len(files) > settings.dispute_evidence_max_files:
        raise Unprocessable(f"a dispute holds at most {settings.dispute_evidence_max_files} files", field="files")
    limit = settings.dispute_evidence_max_bytes + 1
    return [service.EvidenceUpload(filename=file.filename or "", content=await file.read(limit)) for file in files]


# --- partner -------------------------------------------------------------------------------------------


@router.post("/affiliate/disputes", status_code=status.HTTP_201_CREATED, tags=["affiliates"])
async def open_dispute(
    body: DisputeIn, session: SessionDep, settings: SettingsDep, partner: PartnerDep
) -> DisputeDetail:
    """Dispute one of your commissions, or claim a missing conversion (then upload evidence)."""
    dispute = await service.open_dispute(session, settings, partner_id=partner.partner_id, data=body, now=utcnow())
    return await _partner_detail(session, settings, dispute)


@router.get("/affiliate/disputes", tags=["affiliates"])
async def my_disputes(
    session: SessionDep,
    settings: SettingsDep,
    partner: PartnerDep,
    status: DisputeStatus | None = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> DisputePage:
    rows, total = await service.list_partner_disputes(
        session, partner.partner_id, status=status, limit=limit, offset=offset
    )
    return _page(rows, total, settings, limit=limit, offset=offset)


@router.get("/affiliate/disputes/{dispute_id}", tags=["affiliates"])
async def my_dispute(dispute_id: int, session: SessionDep, settings: SettingsDep, partner: PartnerDep) -> DisputeDetail:
    dispute = await service.get_partner_dispute(session, partner.partner_id, dispute_id)
    return await _partner_detail(session, settings, dispute)


@router.post("/affiliate/disputes/{dispute_id}/messages", status_code=status.HTTP_201_CREATED, tags=["affiliates"])
async def reply_as_partner(
    dispute_id: int, body: MessageIn, session: SessionDep, settings: SettingsDep, partner: PartnerDep
) -> MessageOut:
    message = await service.partner_reply(
        session, settings, partner_id=partner.partner_id, dispute_id=dispute_id, body=body.body, now=utcnow()
    )
    return MessageOut.model_validate(message)


@router.post("/affiliate/disputes/{dispute_id}/evidence", status_code=status.HTTP_201_CREATED, tags=["affiliates"])
async def upload_evidence(
    dispute_id: int, files: Files, session: SessionDep, settings: SettingsDep, partner: PartnerDep
) -> list[EvidenceOut]:
    """Multipart upload (`files`, one or more): all stored, or none if any file is refused."""
    uploads = await _read_uploads(files, settings)
    stored = await service.add_evidence(
        session, settings, partner_id=partner.partner_id, dispute_id=dispute_id, uploads=uploads, now=utcnow()
    )
    return [EvidenceOut.model_validate(evidence) for evidence in stored]


@router.get("/affiliate/disputes/{dispute_id}/evidence/{evidence_id}", tags=["affiliates"])
async def download_my_evidence(dispute_id: int, evidence_id: int, session: SessionDep, partner: PartnerDep) -> Response:
    dispute = await service.get_partner_dispute(session, partner.partner_id, dispute_id)
    return _download(await service.evidence_file(session, dispute.id, evidence_id))


# --- staff ---------------------------------------------------------------------------------------------


@router.get("/admin/disputes", tags=["disputes"])
async def dispute_queue(
    session: SessionDep,
    settings: SettingsDep,
    _staff_member: DisputeReader,
    status: DisputeStatus | None = None,
    closed: bool | None = None,
    kind: DisputeKind | None = None,
    partner_id: int | None = None,
    breached: bool | None = None,
    min_age_hours: Hours = None,
    max_age_hours: Hours = None,
    sort: QueueSort = "waiting",
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> DisputePage:
    """The queue. `breached`: waiting on staff past the SLA target. `sort=waiting` (default) puts those
    waiting on staff first, longest waiting first; `newest` / `oldest` sort by opening time."""
    where = service.QueueFilter(
        status=status,
        closed=closed,
        kind=kind,
        partner_id=partner_id,
        breached=breached,
        min_age_hours=min_age_hours,
        max_age_hours=max_age_hours,
        sort=sort,
    )
    rows, total = await service.list_queue(session, settings, where, now=utcnow(), limit=limit, offset=offset)
    return _page(rows, total, settings, limit=limit, offset=offset)


@router.get("/admin/disputes/{dispute_id}", tags=["disputes"])
async def dispute_detail(
    dispute_id: int, session: SessionDep, settings: SettingsDep, _staff_member: DisputeReader
) -> StaffDisputeDetail:
    return await _staff_detail(session, settings, await service.get_dispute(session, dispute_id))


@router.get("/admin/disputes/{dispute_id}/evidence/{evidence_id}", tags=["disputes"])
async def download_evidence(
    dispute_id: int, evidence_id: int, session: SessionDep, _staff_member: DisputeReader
) -> Response:
    dispute = await service.get_dispute(session, dispute_id)
    return _download(await service.evidence_file(session, dispute.id, evidence_id))


@router.post("/admin/disputes/{dispute_id}/messages", status_code=status.HTTP_201_CREATED, tags=["disputes"])
async def reply_as_staff(
    dispute_id: int, body: MessageIn, session: SessionDep, settings: SettingsDep, staff: DisputeWriter
) -> StaffMessageOut:
    message = await service.staff_reply(
        session, settings, _staff(staff), dispute_id=dispute_id, body=body.body, now=utcnow()
    )
    return StaffMessageOut.model_validate(message)


@router.post("/admin/disputes/{dispute_id}/resolve", tags=["disputes"])
async def resolve_dispute(
    dispute_id: int, body: ResolveIn, session: SessionDep, settings: SettingsDep, staff: DisputeWriter
) -> StaffDisputeDetail:
    dispute = await service.resolve(session, settings, _staff(staff), dispute_id, body, now=utcnow())
    return await _staff_detail(session, settings, dispute)
