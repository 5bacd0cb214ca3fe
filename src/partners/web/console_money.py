"""Staff console: commissions review (approve, reject, adjust) and payout batches (build, approve, files,
bank confirmations). The same services as the admin API; the staff member is the audited actor."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from partners.audit.service import entries_for
from partners.commissions import service as commissions
from partners.db.types import utcnow
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError, Unprocessable
from partners.payouts import batches
from partners.payouts import service as payouts
from partners.payouts.providers.base import PAYOUT_METHODS
from partners.web import reports
from partners.web.console import CONSOLE_NOTICES, actor, console_context
from partners.web.pages import (
    FormErrors,
    PageRoute,
    redirect,
    render,
    settings_of,
    staff_viewer,
    text,
    to_minor,
    uploads,
    write_unit,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CONSOLE_NOTICES.update(
    {
        "commission-approved": "Commission approved: it is payable now.",
        "commission-rejected": "Commission rejected; its money went back to the platform.",
        "commission-adjusted": "Adjustment posted to the partner's balance.",
        "batch-created": "Batch built. Review the totals, then approve it.",
        "batch-approved": "Approval recorded. Once enough people approve, the batch is paid.",
        "confirmations": "Bank confirmations applied.",
    }
)
STATUSES = ("pending", "approved", "paid", "reversed", "rejected")
MAX_CONFIRMATION_BYTES = 5 * 1024 * 1024


# --- commissions ----------------------------------------------------------------------------------------


def _commission_filter(request: Request) -> tuple[commissions.CommissionFilter, dict[str, str]]:
    query = request.query_params
    chosen = {
        "status": query.get("status", "pending"),
        "partner_id": query.get("partner_id", ""),
        "level": query.get("level", ""),
    }
    where = commissions.CommissionFilter(
        partner_id=int(chosen["partner_id"]) if chosen["partner_id"].isdigit() else None,
        status=chosen["status"] if chosen["status"] in STATUSES else None,
        level=int(chosen["level"]) if chosen["level"] in ("1", "2", "3") else None,
    )
    return where, chosen


@router.get("/console/commissions")
async def commission_review(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "commissions:read")
    where, chosen = _commission_filter(request)
    offset = max(0, int(request.query_params.get("offset", "0") or 0))
    rows, total = await commissions.list_commissions(session, where, limit=50, offset=offset)
    recent = await reports.recent_audit(session, limit=8, subject_type="commission")
    context = console_context(
        request,
        viewer,
        "commissions",
        rows=rows,
        chosen=chosen,
        statuses=STATUSES,
        partner_names=await reports.partner_names(session, {row.partner_id for row in rows}),
        page={"total": total, "limit": 50, "offset": offset},
        query=urlencode(chosen),
        recent=recent,
        names=await reports.staff_names(session),
        back=f"/console/commissions?{urlencode(chosen)}",
    )
    return render(request, "console/commissions.html", context)


async def _commission_failed(request: Request, error: AppError) -> Response:
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session)
    back = text(await request.form(), "back") or "/console/commissions"
    context = console_context(request, viewer, "commissions", errors=FormErrors.of(error), back=back)
    return render(request, "console/failed.html", context, status_code=error.status)


def _back(form_back: str, done: str) -> str:
    base = form_back if form_back.startswith("/console/commissions") else "/console/commissions"
    return f"{base}{'&' if '?' in base else '?'}done={done}"


@router.post("/console/commissions/{commission_id}/approve")
async def approve_commission(commission_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "commissions:write")
            await commissions.approve_now(session, actor(viewer), commission_id, now=utcnow())
    except AppError as error:
        return await _commission_failed(request, error)
    return redirect(request, _back(text(form, "back"), "commission-approved"))


@router.post("/console/commissions/{commission_id}/reject")
async def reject_commission(commission_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "commissions:write")
            await commissions.reject(session, actor(viewer), commission_id, reason=text(form, "reason", max_length=500))
    except AppError as error:
        return await _commission_failed(request, error)
    return redirect(request, _back(text(form, "back"), "commission-rejected"))


@router.post("/console/commissions/{commission_id}/adjust")
async def adjust_commission(commission_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "commissions:write")
            commission = await commissions.get_commission(session, commission_id)
            raw = text(form, "amount")
            negative = raw.startswith("-")
            amount = to_minor(raw.lstrip("+-"), commission.currency)
            await commissions.adjust(
                session,
                actor(viewer),
                commission_id,
                amount=-amount if negative else amount,
                reason=text(form, "reason", max_length=500),
                idempotency_key=text(form, "key", max_length=100) or None,
            )
    except AppError as error:
        return await _commission_failed(request, error)
    return redirect(request, _back(text(form, "back"), "commission-adjusted"))


# --- payouts --------------------------------------------------------------------------------------------


@router.get("/console/payouts")
async def payout_batches(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "payouts:read")
    waiting, waiting_total = await payouts.list_payouts(
        session, payouts.PayoutFilter(status="pending"), limit=100, offset=0
    )
    rows, total = await batches.list_batches(session, limit=25, offset=0)
    summaries = []
    for batch in rows:
        members = [p for p in await batches.batch_payouts(session, batch.id) if p.status != "cancelled"]
        summaries.append({"batch": batch, "totals": batches.totals_of(members), "count": len(members)})
    context = console_context(
        request,
        viewer,
        "payouts",
        waiting=waiting,
        waiting_total=waiting_total,
        unbatched=[p for p in waiting if p.batch_id is None],
        batches=summaries,
        total=total,
        methods=PAYOUT_METHODS,
        partner_names=await reports.partner_names(session, {p.partner_id for p in waiting}),
    )
    return render(request, "console/payouts.html", context)


@router.post("/console/payouts/batches")
async def build_batch(request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "payouts:write")
            batch = await batches.create_batch(
                session,
                settings_of(request),
                actor(viewer),
                method=text(form, "method") or None,
                currency=text(form, "currency").upper() or None,
            )
    except AppError as error:
        return await _batch_failed(request, error, "/console/payouts")
    return redirect(request, f"/console/payouts/batches/{batch.id}?done=batch-created")


async def _batch_failed(request: Request, error: AppError, back: str) -> Response:
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session)
    context = console_context(request, viewer, "payouts", errors=FormErrors.of(error), back=back)
    return render(request, "console/failed.html", context, status_code=error.status)


@router.get("/console/payouts/batches/{batch_id}")
async def batch_detail(batch_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "payouts:read")
    batch = await batches.get_batch(session, batch_id)
    members = await batches.batch_payouts(session, batch.id)
    approvals = await batches.approvals_of(session, batch.id)
    context: dict[str, Any] = console_context(
        request,
        viewer,
        "payouts",
        batch=batch,
        payouts=members,
        totals=batches.totals_of([p for p in members if p.status != "cancelled"]),
        approvals=approvals,
        files=await batches.files_of(session, batch.id),
        partner_names=await reports.partner_names(session, {p.partner_id for p in members}),
        names=await reports.staff_names(session),
        entries=list(reversed(await entries_for(session, "payout_batch", batch.id))),
        approved_by_me=any(a.staff_id == viewer.actor_id for a in approvals),
    )
    return render(request, "console/batch.html", context)


@router.post("/console/payouts/batches/{batch_id}/approve")
async def approve_batch(batch_id: int, request: Request) -> Response:
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "payouts:approve")
            await batches.approve_batch(session, settings_of(request), actor(viewer), batch_id, now=utcnow())
    except AppError as error:
        return await _batch_failed(request, error, f"/console/payouts/batches/{batch_id}")
    return redirect(request, f"/console/payouts/batches/{batch_id}?done=batch-approved")


@router.get("/console/payouts/batches/{batch_id}/files/{name}")
async def batch_file(batch_id: int, name: str, request: Request, session: SessionDep) -> Response:
    await staff_viewer(request, session, "payouts:write")
    found = await batches.get_file(session, batch_id, name)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.name}"'},
    )


@router.post("/console/payouts/batches/{batch_id}/confirmations")
async def upload_confirmations(batch_id: int, request: Request) -> Response:
    form = await request.form()
    files = uploads(form, "file")
    try:
        if not files:
            raise Unprocessable("Choose the bank's confirmation CSV first.", field="file")
        raw = await files[0].read(MAX_CONFIRMATION_BYTES + 1)
        if len(raw) > MAX_CONFIRMATION_BYTES:
            raise Unprocessable("The file is larger than 5 MiB.", field="file")
        try:
            content = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Unprocessable("The file is not UTF-8 text.", field="file") from None
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "payouts:write")
            await batches.apply_confirmations(session, actor(viewer), batch_id, content, now=utcnow())
    except AppError as error:
        return await _batch_failed(request, error, f"/console/payouts/batches/{batch_id}")
    return redirect(request, f"/console/payouts/batches/{batch_id}?done=confirmations")
