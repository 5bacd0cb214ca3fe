"""Payout batches: finance groups pending payouts, reviews totals, approves (a second, different approver
above PARTNERS_PAYOUT_SECOND_APPROVAL_AMOUNT), and a job executes each method's provider and applies what it
answered. Bank confirmations (CSV) settle what the rails leave "processing"."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.audit.service import Actor, record
from partners.jobs.service import enqueue
from partners.kit.errors import Conflict, NotFound, Unprocessable
from partners.payouts import service
from partners.payouts.models import (
    Payout,
    PayoutBatch,
    PayoutBatchApproval,
    PayoutBatchFile,
    PayoutBatchRail,
)
from partners.payouts.providers import get_provider
from partners.payouts.providers.base import (
    PAYOUT_METHODS,
    BatchExecution,
    PayoutInstruction,
    PayoutProvider,
    PollingProvider,
    ProviderResult,
    currency_exponent,
)
from partners.settings import Settings

EXECUTE_BATCH_JOB = "payouts.execute_batch"
POLL_RAIL_JOB = "payouts.poll_rail"
MAX_POLLS = 30
CONFIRMATION_STATUSES = ("paid", "returned", "failed")
CONFIRMATION_COLUMNS = ("payout_id", "status", "reference", "reason")
MAX_CONFIRMATION_ROWS = 50_000


# --- creating and reading --------------------------------------------------------------------------------


async def get_batch(session: AsyncSession, batch_id: int, *, for_update: bool = False) -> PayoutBatch:
    query = sa.select(PayoutBatch).where(PayoutBatch.id == batch_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    batch = await session.scalar(query)
    if batch is None:
        raise NotFound(f"payout batch {batch_id} not found", field="batch_id")
    return batch


async def batch_payouts(session: AsyncSession, batch_id: int, *, for_update: bool = False) -> list[Payout]:
    query = sa.select(Payout).where(Payout.batch_id == batch_id).order_by(Payout.id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(await session.scalars(query))


async def list_batches(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[PayoutBatch], int]:
    total = await session.scalar(sa.select(sa.func.count()).select_from(PayoutBatch))
    rows = await session.scalars(sa.select(PayoutBatch).order_by(PayoutBatch.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def approvals_of(session: AsyncSession, batch_id: int) -> list[PayoutBatchApproval]:
    result = await session.scalars(
        sa.select(PayoutBatchApproval).where(PayoutBatchApproval.batch_id == batch_id).order_by(PayoutBatchApproval.id)
    )
    return list(result)


async def files_of(session: AsyncSession, batch_id: int) -> list[PayoutBatchFile]:
    result = await session.scalars(
        sa.select(PayoutBatchFile).where(PayoutBatchFile.batch_id == batch_id).order_by(PayoutBatchFile.id)
    )
    return list(result)


async def get_file(session: AsyncSession, batch_id: int, name: str) -> PayoutBatchFile:
    found = await session.scalar(
        sa.select(PayoutBatchFile).where(PayoutBatchFile.batch_id == batch_id, PayoutBatchFile.name == name)
    )
    if found is None:
        raise NotFound(f"batch {batch_id} has no file {name!r}", field="name")
    return found


def approvals_needed(settings: Settings, payouts: list[Payout]) -> int:
    """2 when any currency's total is above the second-approval amount (major units), else 1."""
    totals: dict[str, int] = {}
    for payout in payouts:
        totals[payout.currency] = totals.get(payout.currency, 0) + payout.amount
    for currency, total in totals.items():
        limit = settings.payout_second_approval_amount * Decimal(10 ** currency_exponent(currency))
        if total > limit:
            return 2
    return 1


async def create_batch(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    *,
    method: str | None = None,
    currency: str | None = None,
) -> PayoutBatch:
    """A batch of every pending payout not in a batch yet (optionally of one method / currency)."""
    if method is not None and method not in PAYOUT_METHODS:
        raise Unprocessable(f"unknown payout method {method!r}", field="method")
    query = sa.select(Payout).where(Payout.status == "pending", Payout.batch_id.is_(None))
    if method is not None:
        query = query.where(Payout.method == method)
    if currency is not None:
        query = query.where(Payout.currency == currency.upper())
    payouts = list(
        await session.scalars(query.order_by(Payout.id).with_for_update().execution_options(populate_existing=True))
    )
    if not payouts:
        raise Unprocessable("no pending payout matches: nothing to batch", field="method")
    batch = PayoutBatch(
        status="open",
        method_filter=method,
        currency_filter=currency.upper() if currency else None,
        created_by=actor.id,
        required_approvals=approvals_needed(settings, payouts),
    )
    session.add(batch)
    await session.flush()
    for payout in payouts:
        payout.batch_id = batch.id
    await session.flush()
    await record(
        session,
        actor,
        "payout_batch.created",
        subject_type="payout_batch",
        subject_id=batch.id,
        details={"payouts": len(payouts), "method": method, "currency": batch.currency_filter},
    )
    return batch


async def approve_batch(
    session: AsyncSession, settings: Settings, actor: Actor, batch_id: int, *, now: datetime
) -> PayoutBatch:
    """Record the actor's approval; once enough different people approved, execution is enqueued."""
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status != "open":
        raise Conflict(f"payout batch {batch_id} is {batch.status}, not open", field="batch_id")
    payouts = [payout for payout in await batch_payouts(session, batch_id) if payout.status == "pending"]
    if not payouts:
        raise Conflict(f"payout batch {batch_id} has no pending payout left", field="batch_id")
    batch.required_approvals = max(batch.required_approvals, approvals_needed(settings, payouts))
    approvals = await approvals_of(session, batch_id)
    if any(approval.staff_id == actor.id for approval in approvals):
        raise Conflict(
            f"you already approved batch {batch_id}: a second, different approver is required",
            field="batch_id",
        )
    session.add(PayoutBatchApproval(batch_id=batch.id, staff_id=actor.id))
    await session.flush()
    count = len(approvals) + 1
    if count >= batch.required_approvals:
        batch.status = "approved"
        batch.approved_at = now
        await enqueue(session, EXECUTE_BATCH_JOB, {"batch_id": batch.id}, unique_key=f"payout-batch:{batch.id}:execute")
    await record(
        session,
        actor,
        "payout_batch.approved",
        subject_type="payout_batch",
        subject_id=batch.id,
        details={"approval": count, "required": batch.required_approvals, "status": batch.status},
    )
    return batch


@dataclass(frozen=True, slots=True)
class BatchTotal:
    method: str
    currency: str
    count: int
    amount: int


def totals_of(payouts: list[Payout]) -> list[BatchTotal]:
    return [
        BatchTotal(method, currency, count, amount)
        for (method, currency), (count, amount) in sorted(service.group_totals(payouts).items())
    ]


# --- execution -------------------------------------------------------------------------------------------


async def _instructions(session: AsyncSession, settings: Settings, payouts: list[Payout]) -> list[PayoutInstruction]:
    partner_ids = {payout.partner_id for payout in payouts}
    partners = {
        partner.id: partner for partner in await session.scalars(sa.select(Partner).where(Partner.id.in_(partner_ids)))
    }
    return [
        PayoutInstruction(
            payout_id=payout.id,
            partner_id=payout.partner_id,
            partner_name=partners[payout.partner_id].name,
            partner_email=partners[payout.partner_id].email,
            amount=payout.amount,
            currency=payout.currency,
            method=payout.method,
            details=service.decrypt_details(settings, payout.details_encrypted, payout.method),
        )
        for payout in payouts
    ]


async def _store_file(session: AsyncSession, batch_id: int, method: str, execution: BatchExecution) -> None:
    if not execution.file_name or execution.file_bytes is None:
        return
    name = execution.file_name.replace("/", "_").replace("\\", "_")[:200]
    existing = await session.scalar(
        sa.select(PayoutBatchFile).where(PayoutBatchFile.batch_id == batch_id, PayoutBatchFile.name == name)
    )
    if existing is None:
        existing = PayoutBatchFile(batch_id=batch_id, method=method, name=name)
        session.add(existing)
    existing.media_type = execution.media_type or "application/octet-stream"
    existing.content = execution.file_bytes
    existing.size = len(execution.file_bytes)
    await session.flush()


async def _rail(session: AsyncSession, batch_id: int, method: str) -> PayoutBatchRail:
    rail = await session.scalar(
        sa.select(PayoutBatchRail).where(PayoutBatchRail.batch_id == batch_id, PayoutBatchRail.method == method)
    )
    if rail is None:
        rail = PayoutBatchRail(batch_id=batch_id, method=method, polls=0)
        session.add(rail)
        await session.flush()
    return rail


async def apply_results(
    session: AsyncSession, payouts: list[Payout], results: list[ProviderResult], *, now: datetime
) -> None:
    """Apply a provider's answers; a payout it did not answer for stays processing."""
    by_id = {result.payout_id: result for result in results}
    for payout in payouts:
        result = by_id.get(payout.id)
        if result is None or result.status == "processing":
            service.mark_processing(payout, result.reference if result else None, now)
        elif result.status == "paid":
            await service.mark_paid(session, payout, result.reference, now)
        else:
            if result.reference:
                payout.reference = result.reference[:200]
            await service.mark_failed(session, payout, result.failure_reason or "rejected by the rail", now)
    await session.flush()


async def _run_rail(
    session: AsyncSession,
    settings: Settings,
    batch: PayoutBatch,
    method: str,
    payouts: list[Payout],
    *,
    now: datetime,
) -> None:
    provider: PayoutProvider = get_provider(method, settings)
    execution = await provider.execute(batch.id, await _instructions(session, settings, payouts))
    await _store_file(session, batch.id, method, execution)
    rail = await _rail(session, batch.id, method)
    rail.remote_reference = execution.remote_reference or rail.remote_reference
    await apply_results(session, payouts, execution.results, now=now)
    if isinstance(provider, PollingProvider) and any(payout.status == "processing" for payout in payouts):
        await _enqueue_poll(session, batch.id, method, rail.polls, now)


async def _enqueue_poll(session: AsyncSession, batch_id: int, method: str, polls: int, now: datetime) -> None:
    if polls >= MAX_POLLS:
        return  # left processing: finance confirms by upload
    delay = timedelta(seconds=min(60 * 2**polls, 3600))
    await enqueue(
        session,
        POLL_RAIL_JOB,
        {"batch_id": batch_id, "method": method},
        unique_key=f"payout-batch:{batch_id}:{method}:poll:{polls}",
        run_after=now + delay,
    )


async def _refresh_status(session: AsyncSession, batch: PayoutBatch, now: datetime) -> None:
    statuses = {payout.status for payout in await batch_payouts(session, batch.id)}
    if statuses & {"pending", "processing"}:
        batch.status = "processing"
    else:
        batch.status = "completed"
        batch.completed_at = batch.completed_at or now
    await session.flush()


async def execute_batch(session: AsyncSession, settings: Settings, batch_id: int, *, now: datetime) -> None:
    """Run every method's provider on the batch's pending payouts and apply the results. At-least-once
    safe: only pending payouts are sent, and providers are idempotent by batch id."""
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status not in ("approved", "processing"):
        return
    pending = [
        payout for payout in await batch_payouts(session, batch_id, for_update=True) if payout.status == "pending"
    ]
    by_method: dict[str, list[Payout]] = {}
    for payout in pending:
        by_method.setdefault(payout.method, []).append(payout)
    for method, payouts in sorted(by_method.items()):
        await _run_rail(session, settings, batch, method, payouts, now=now)
    batch.executed_at = batch.executed_at or now
    await _refresh_status(session, batch, now)


async def poll_rail(session: AsyncSession, settings: Settings, batch_id: int, method: str, *, now: datetime) -> None:
    """Ask a polling provider (PayPal) about the batch's payouts still processing."""
    batch = await get_batch(session, batch_id, for_update=True)
    payouts = [
        payout
        for payout in await batch_payouts(session, batch_id, for_update=True)
        if payout.method == method and payout.status == "processing"
    ]
    if not payouts:
        return
    provider = get_provider(method, settings)
    if not isinstance(provider, PollingProvider):
        return
    rail = await _rail(session, batch_id, method)
    rail.polls += 1
    execution = await provider.poll(batch_id, rail.remote_reference, await _instructions(session, settings, payouts))
    await _store_file(session, batch_id, method, execution)
    await apply_results(session, payouts, execution.results, now=now)
    if any(payout.status == "processing" for payout in payouts):
        await _enqueue_poll(session, batch_id, method, rail.polls, now)
    await _refresh_status(session, batch, now)


# --- bank confirmations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmationRow:
    line: int
    payout_id: int
    status: str
    reference: str
    reason: str


@dataclass
class ConfirmationReport:
    paid: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def parse_confirmations(text: str) -> list[ConfirmationRow]:
    """Rows of a confirmation CSV with the header payout_id,status,reference,reason. Any bad line rejects
    the whole file (422 naming the line)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in ("payout_id", "status") if column not in (reader.fieldnames or [])]
    if missing:
        raise Unprocessable(
            f"the CSV header needs {', '.join(CONFIRMATION_COLUMNS)}; missing {', '.join(missing)}",
            field="file",
        )
    rows: list[ConfirmationRow] = []
    for line, raw in enumerate(reader, start=2):
        if len(rows) >= MAX_CONFIRMATION_ROWS:
            raise Unprocessable(f"at most {MAX_CONFIRMATION_ROWS} rows per upload", field="file")
        payout_id = (raw.get("payout_id") or "").strip()
        status = (raw.get("status") or "").strip().lower()
        if not payout_id.isdigit():
            raise Unprocessable(f"line {line}: payout_id {payout_id!r} is not a number", field="file")
        if status not in CONFIRMATION_STATUSES:
            raise Unprocessable(
                f"line {line}: status {status!r} is not one of {', '.join(CONFIRMATION_STATUSES)}",
                field="file",
            )
        rows.append(
            ConfirmationRow(
                line=line,
                payout_id=int(payout_id),
                status=status,
                reference=(raw.get("reference") or "").strip(),
                reason=(raw.get("reason") or "").strip(),
            )
        )
    if not rows:
        raise Unprocessable("the CSV has no rows", field="file")
    return rows


async def _confirm_one(
    session: AsyncSession, payout: Payout, row: ConfirmationRow, report: ConfirmationReport, now: datetime
) -> None:
    reference = row.reference or None
    if row.status == "paid":
        changed = await service.mark_paid(session, payout, reference, now)
        (report.paid if changed else report.unchanged).append(payout.id)
    elif row.status == "failed":
        if payout.status == "paid":
            raise Unprocessable(
                f"line {row.line}: payout {payout.id} is paid; a paid payout that came back is 'returned'",
                field="file",
            )
        changed = await service.mark_failed(session, payout, row.reason or "rejected by the bank", now)
        (report.failed if changed else report.unchanged).append(payout.id)
    else:
        if payout.status in ("pending", "processing"):
            await service.mark_paid(session, payout, reference, now)  # it left, then came back
        changed = await service.mark_returned(session, payout, row.reason or "returned by the bank", now)
        (report.returned if changed else report.unchanged).append(payout.id)


async def apply_confirmations(
    session: AsyncSession, actor: Actor, batch_id: int, text: str, *, now: datetime
) -> ConfirmationReport:
    """Settle a batch's payouts from the bank's answer. Rows already in their state are left alone, so the
    same file can be uploaded twice."""
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status == "open":
        raise Conflict(f"payout batch {batch_id} is not approved yet", field="batch_id")
    rows = parse_confirmations(text)
    payouts = {payout.id: payout for payout in await batch_payouts(session, batch_id, for_update=True)}
    report = ConfirmationReport()
    for row in rows:
        payout = payouts.get(row.payout_id)
        if payout is None:
            raise Unprocessable(f"line {row.line}: payout {row.payout_id} is not in batch {batch_id}", field="file")
        if payout.status == row.status:
            report.unchanged.append(payout.id)
            continue
        if payout.status in ("cancelled", "failed", "returned"):
            raise Unprocessable(
                f"line {row.line}: payout {payout.id} is {payout.status}; it cannot become {row.status}",
                field="file",
            )
        await _confirm_one(session, payout, row, report, now)
    await _refresh_status(session, batch, now)
    await record(
        session,
        actor,
        "payout_batch.confirmations",
        subject_type="payout_batch",
        subject_id=batch_id,
        details={
            "paid": report.paid,
            "failed": report.failed,
            "returned": report.returned,
            "unchanged": report.unchanged,
        },
    )
    return report
