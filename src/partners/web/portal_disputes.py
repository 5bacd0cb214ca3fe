"""Partner portal: disputes (open one, follow the thread, reply, add evidence)."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.types import utcnow
from partners.disputes import service as disputes
from partners.disputes.schemas import DisputeIn
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError, Unprocessable
from partners.programs.models import Program
from partners.web.pages import (
    FormErrors,
    PageRoute,
    PartnerViewer,
    partner_viewer,
    redirect,
    render,
    settings_of,
    text,
    to_minor,
    uploads,
    write_unit,
)
from partners.web.portal import DISPUTE_KINDS, portal_context

router = APIRouter(route_class=PageRoute, include_in_schema=False)


async def _list_context(request: Request, session: AsyncSession, viewer: PartnerViewer, **extra: Any) -> dict[str, Any]:
    rows, total = await disputes.list_partner_disputes(session, viewer.partner.id, status=None, limit=50, offset=0)
    program = await session.get_one(Program, viewer.partner.program_id)
    return portal_context(
        request,
        viewer,
        "disputes",
        rows=rows,
        total=total,
        kinds=DISPUTE_KINDS,
        currency=program.currency,
        commission_id=request.query_params.get("commission", ""),
        values=extra.pop("values", {}),
        **extra,
    )


@router.get("/portal/disputes")
async def dispute_list(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    return render(request, "portal/disputes.html", await _list_context(request, session, viewer))


def _dispute_request(values: dict[str, str], currency: str) -> DisputeIn:
    kind = values["kind"]
    claimed = to_minor(values["claimed_amount"], currency, "claimed_amount") if values["claimed_amount"] else None
    if kind == "missing_conversion":
        try:
            order_date = date.fromisoformat(values["order_date"]) if values["order_date"] else None
        except ValueError:
            raise Unprocessable("Enter the order's date.", field="order_date") from None
        return DisputeIn(
            kind="missing_conversion",
            message=values["message"],
            claimed_amount=claimed,
            order_reference=values["order_reference"] or None,
            order_date=order_date,
            customer_external_id=values["customer_external_id"] or None,
        )
    if not values["commission_id"].isdigit():
        raise Unprocessable("Enter the number of the commission (see Commissions).", field="commission_id")
    return DisputeIn.model_validate(
        {
            "kind": kind,
            "message": values["message"],
            "commission_id": int(values["commission_id"]),
            "claimed_amount": claimed,
        }
    )


@router.post("/portal/disputes")
async def open_dispute(request: Request) -> Response:
    form = await request.form()
    names = (
        "kind",
        "message",
        "commission_id",
        "claimed_amount",
        "order_reference",
        "order_date",
        "customer_external_id",
    )
    values = {name: text(form, name) for name in names}
    try:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            program = await session.get_one(Program, viewer.partner.program_id)
            data = _dispute_request(values, program.currency)
            dispute = await disputes.open_dispute(
                session, settings_of(request), partner_id=viewer.partner.id, data=data, now=utcnow()
            )
    except (AppError, ValidationError) as error:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            context = await _list_context(request, session, viewer, values=values)
        context["errors"] = FormErrors.of(error)
        return render(request, "portal/disputes.html", context, status_code=422)
    return redirect(request, f"/portal/disputes/{dispute.id}?done=dispute")


async def _detail_context(
    request: Request, session: AsyncSession, viewer: PartnerViewer, dispute_id: int
) -> dict[str, Any]:
    settings = settings_of(request)
    dispute = await disputes.get_partner_dispute(session, viewer.partner.id, dispute_id)
    return portal_context(
        request,
        viewer,
        "disputes",
        dispute=dispute,
        messages=await disputes.messages_of(session, dispute.id),
        evidence=await disputes.evidence_of(session, dispute.id),
        sla=disputes.sla_of(dispute, target_hours=settings.dispute_sla_hours, now=utcnow()),
        max_files=settings.dispute_evidence_max_files,
    )


@router.get("/portal/disputes/{dispute_id}")
async def dispute_detail(dispute_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    return render(request, "portal/dispute.html", await _detail_context(request, session, viewer, dispute_id))


async def _detail_failure(request: Request, dispute_id: int, error: AppError | ValidationError) -> Response:
    async with write_unit(request) as session:
        viewer = await partner_viewer(request, session)
        context = await _detail_context(request, session, viewer, dispute_id)
    context["errors"] = FormErrors.of(error)
    return render(request, "portal/dispute.html", context, status_code=422)


@router.post("/portal/disputes/{dispute_id}/reply")
async def reply(dispute_id: int, request: Request) -> Response:
    form = await request.form()
    body = text(form, "body")
    try:
        if not body:
            raise Unprocessable("Write a message first.", field="body")
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            await disputes.partner_reply(
                session,
                settings_of(request),
                partner_id=viewer.partner.id,
                dispute_id=dispute_id,
                body=body,
                now=utcnow(),
            )
    except AppError as error:
        return await _detail_failure(request, dispute_id, error)
    return redirect(request, f"/portal/disputes/{dispute_id}?done=reply")


@router.post("/portal/disputes/{dispute_id}/evidence")
async def add_evidence(dispute_id: int, request: Request) -> Response:
    settings = settings_of(request)
    form = await request.form()
    files = uploads(form, "files")
    try:
        if len(files) > settings.dispute_evidence_max_files:
            raise Unprocessable(f"At most {settings.dispute_evidence_max_files} files.", field="files")
        received = [
            disputes.EvidenceUpload(
                filename=file.filename or "", content=await file.read(settings.dispute_evidence_max_bytes + 1)
            )
            for file in files
        ]
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            await disputes.add_evidence(
                session,
                settings,
                partner_id=viewer.partner.id,
                dispute_id=dispute_id,
                uploads=received,
                now=utcnow(),
            )
    except AppError as error:
        return await _detail_failure(request, dispute_id, error)
    return redirect(request, f"/portal/disputes/{dispute_id}?done=evidence")


@router.get("/portal/disputes/{dispute_id}/evidence/{evidence_id}")
async def evidence_file(dispute_id: int, evidence_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    dispute = await disputes.get_partner_dispute(session, viewer.partner.id, dispute_id)
    return download(await disputes.evidence_file(session, dispute.id, evidence_id))


def download(evidence: Any) -> Response:
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
