"""Payouts: the partner's methods, requests and statements; finance's batches, files and confirmations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, Query, Response, UploadFile, status
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.deps import ApprovedPartnerDep, PartnerDep
from partners.affiliates.models import Partner
from partners.audit.service import Actor
from partners.db.types import utcnow
from partners.identity.deps import StaffPrincipal, require_staff
from partners.kit.deps import SessionDep, SettingsDep
from partners.kit.errors import NotFound, Unprocessable
from partners.payouts import batches, service, statements
from partners.payouts.models import PayoutBatch, PayoutMethod
from partners.payouts.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    BalanceOut,
    BatchDetail,
    BatchFileOut,
    BatchIn,
    BatchOut,
    BatchPage,
    BatchTotalOut,
    ConfirmationsOut,
    ConfirmIn,
    MethodIn,
    MethodName,
    MethodOut,
    PayoutOut,
    PayoutPage,
    PayoutRequestIn,
    PayoutStatus,
)

router = APIRouter()

PayoutReader = Annotated[StaffPrincipal, Depends(require_staff("payouts:read"))]
PayoutWriter = Annotated[StaffPrincipal, Depends(require_staff("payouts:write"))]
PayoutApprover = Annotated[StaffPrincipal, Depends(require_staff("payouts:approve"))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0)]
MAX_CONFIRMATION_BYTES = 5 * 1024 * 1024


def _actor(staff: StaffPrincipal) -> Actor:
    return Actor("staff", str(staff.user_id))


async def _partner(session: AsyncSession, partner_id: int) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("partner not found", field="partner_id")
    return partner


def _method_out(row: PayoutMethod) -> MethodOut:
    problem = service.method_problem(row, row.currency, utcnow())
    return MethodOut(
        currency=row.currency,
        method=row.method,
        details=row.details_masked,
        confirmed=row.confirmed_at is not None,
        cooldown_until=row.cooldown_until,
        ready=problem is None,
        problem=problem,
        updated_at=row.updated_at,
    )


# --- partner: methods ------------------------------------------------------------------------------------


@router.get("/affiliate/payout/methods", tags=["payouts"])
async def my_methods(session: SessionDep, partner: PartnerDep) -> list[MethodOut]:
    return [_method_out(row) for row in await service.list_methods(session, partner.partner_id)]


@router.put("/affiliate/payout/methods/{currency}", tags=["payouts"])
async def set_my_method(
    currency: str, body: MethodIn, session: SessionDep, settings: SettingsDep, partner: ApprovedPartnerDep
) -> MethodOut:
    """Set the payout method for a currency. Unless it is platform credit, an email with a confirmation token
    is sent, and changing existing details pauses payouts for the cool-down."""
    change = await service.set_method(
        session,
        settings,
        await _partner(session, partner.partner_id),
        currency=currency,
        method=body.method,
        details=body.details,
        now=utcnow(),
    )
    return _method_out(change.method)


@router.post("/affiliate/payout/methods/confirm", tags=["payouts"])
async def confirm_my_method(
    body: ConfirmIn, session: SessionDep, settings: SettingsDep, partner: PartnerDep
) -> MethodOut:
    row = await service.confirm_method(session, settings, partner.partner_id, body.token, now=utcnow())
    return _method_out(row)


@router.delete("/affiliate/payout/methods/{currency}", status_code=status.HTTP_204_NO_CONTENT, tags=["payouts"])
async def delete_my_method(currency: str, session: SessionDep, partner: PartnerDep) -> Response:
    await service.delete_method(session, partner.partner_id, currency)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- partner: balances, requests, payouts ----------------------------------------------------------------


@router.get("/affiliate/payout/balances", tags=["payouts"])
async def my_balances(session: SessionDep, settings: SettingsDep, partner: PartnerDep) -> list[BalanceOut]:
    balances = await service.available_balances(session, partner.partner_id)
    return [
        BalanceOut(currency=currency, available=available, minimum=service.minimum_amount(settings, currency))
        for currency, available in sorted(balances.items())
    ]


@router.post("/affiliate/payout/request", status_code=status.HTTP_201_CREATED, tags=["payouts"])
async def request_payout(
    body: PayoutRequestIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    partner: ApprovedPartnerDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=100)] = None,
) -> PayoutOut:
    """Request a payout of `amount` (≥ the minimum, ≤ available). The same Idempotency-Key with the same
    body returns the same payout (200); with another body, 409."""
    outcome = await service.request_payout(
        session,
        settings,
        await _partner(session, partner.partner_id),
        amount=body.amount,
        currency=body.currency,
        now=utcnow(),
        idempotency_key=f"client:{idempotency_key}" if idempotency_key else None,
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return PayoutOut.model_validate(outcome.payout)


@router.get("/affiliate/payouts", tags=["payouts"])
async def my_payouts(
    session: SessionDep,
    partner: PartnerDep,
    status: PayoutStatus | None = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> PayoutPage:
    where = service.PayoutFilter(partner_id=partner.partner_id, status=status)
    rows, total = await service.list_payouts(session, where, limit=limit, offset=offset)
    return PayoutPage(items=[PayoutOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/affiliate/payouts/{payout_id}", tags=["payouts"])
async def my_payout(payout_id: int, session: SessionDep, partner: PartnerDep) -> PayoutOut:
    return PayoutOut.model_validate(await service.get_partner_payout(session, partner.partner_id, payout_id))


@router.post("/affiliate/payouts/{payout_id}/cancel", tags=["payouts"])
async def cancel_my_payout(payout_id: int, session: SessionDep, partner: PartnerDep) -> PayoutOut:
    payout = await service.cancel_payout(session, partner.partner_id, payout_id, now=utcnow())
    return PayoutOut.model_validate(payout)


@router.get("/affiliate/payouts/{payout_id}/statement.pdf", tags=["payouts"], response_class=Response)
async def my_statement(payout_id: int, session: SessionDep, partner: PartnerDep) -> Response:
    payout = await service.get_partner_payout(session, partner.partner_id, payout_id)
    content = statements.render_pdf(await statements.build_statement(session, payout))
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="payout-{payout.id}.pdf"'},
    )


# --- staff: payouts and batches --------------------------------------------------------------------------


@router.get("/admin/payouts", tags=["payouts"])
async def list_payouts(
    session: SessionDep,
    _staff: PayoutReader,
    partner_id: int | None = None,
    status: PayoutStatus | None = None,
    method: MethodName | None = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    batch_id: int | None = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> PayoutPage:
    where = service.PayoutFilter(
        partner_id=partner_id, status=status, method=method, currency=currency, batch_id=batch_id
    )
    rows, total = await service.list_payouts(session, where, limit=limit, offset=offset)
    return PayoutPage(items=[PayoutOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


async def _batch_out(session: AsyncSession, batch: PayoutBatch) -> BatchDetail:
    payouts = await batches.batch_payouts(session, batch.id)
    approvals = await batches.approvals_of(session, batch.id)
    files = await batches.files_of(session, batch.id)
    return BatchDetail(
        id=batch.id,
        status=batch.status,
        method_filter=batch.method_filter,
        currency_filter=batch.currency_filter,
        created_by=batch.created_by,
        required_approvals=batch.required_approvals,
        approved_by=[approval.staff_id for approval in approvals],
        approved_at=batch.approved_at,
        executed_at=batch.executed_at,
        completed_at=batch.completed_at,
        created_at=batch.created_at,
        totals=[
            BatchTotalOut(method=t.method, currency=t.currency, count=t.count, amount=t.amount)
            for t in batches.totals_of([payout for payout in payouts if payout.status != "cancelled"])
        ],
        files=[BatchFileOut.model_validate(file) for file in files],
        payouts=[PayoutOut.model_validate(payout) for payout in payouts],
    )


@router.post("/admin/payout-batches", status_code=status.HTTP_201_CREATED, tags=["payouts"])
async def create_batch(body: BatchIn, session: SessionDep, settings: SettingsDep, staff: PayoutWriter) -> BatchDetail:
    batch = await batches.create_batch(session, settings, _actor(staff), method=body.method, currency=body.currency)
    return await _batch_out(session, batch)


@router.get("/admin/payout-batches", tags=["payouts"])
async def list_batches(
    session: SessionDep, _staff: PayoutReader, limit: Limit = DEFAULT_PAGE_SIZE, offset: Offset = 0
) -> BatchPage:
    rows, total = await batches.list_batches(session, limit=limit, offset=offset)
    items: list[BatchOut] = []
    for batch in rows:
        detail = await _batch_out(session, batch)
        items.append(BatchOut.model_validate(detail.model_dump(exclude={"payouts"})))
    return BatchPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/admin/payout-batches/{batch_id}", tags=["payouts"])
async def get_batch(batch_id: int, session: SessionDep, _staff: PayoutReader) -> BatchDetail:
    return await _batch_out(session, await batches.get_batch(session, batch_id))


@router.post("/admin/payout-batches/{batch_id}/approve", tags=["payouts"])
async def approve_batch(
    batch_id: int, session: SessionDep, settings: SettingsDep, staff: PayoutApprover
) -> BatchDetail:
    batch = await batches.approve_batch(session, settings, _actor(staff), batch_id, now=utcnow())
    return await _batch_out(session, batch)


@router.get("/admin/payout-batches/{batch_id}/files/{name}", tags=["payouts"], response_class=Response)
async def download_file(batch_id: int, name: str, session: SessionDep, _staff: PayoutWriter) -> Response:
    found = await batches.get_file(session, batch_id, name)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.name}"'},
    )


async def _upload_text(file: UploadFile) -> str:
    raw = await file.read(MAX_CONFIRMATION_BYTES + 1)
    if len(raw) > MAX_CONFIRMATION_BYTES:
        raise Unprocessable("the file is larger than 5 MiB", field="file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unprocessable("the file is not UTF-8 text", field="file") from None


@router.post("/admin/payout-batches/{batch_id}/confirmations", tags=["payouts"])
async def upload_confirmations(
    batch_id: int,
    session: SessionDep,
    staff: PayoutWriter,
    file: Annotated[UploadFile, File(description="CSV: payout_id,status,reference,reason")],
) -> ConfirmationsOut:
    """Bank confirmation CSV (multipart field `file`; status paid | failed | returned)."""
    text = await _upload_text(file)
    report = await batches.apply_confirmations(session, _actor(staff), batch_id, text, now=utcnow())
    return ConfirmationsOut(
        paid=report.paid, failed=report.failed, returned=report.returned, unchanged=report.unchanged
    )
