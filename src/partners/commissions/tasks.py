"""Periodic approval of commissions whose hold has passed.

The schedule's period is COMMISSION_CALCULATION_FREQUENCY (hourly, daily or weekly), read at every tick; the
schedule's unique key runs it once per period, and the approval itself is idempotent (only pending
commissions are approved, each approval's ledger move has its own key).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from partners.commissions.service import approve_due_commissions
from partners.db.types import utcnow
from partners.jobs.registry import job_handler
from partners.jobs.schedules import register_schedule

APPROVE_DUE = "commissions.approve_due"


@job_handler(APPROVE_DUE)
async def approve_due(session: AsyncSession, payload: dict[str, Any]) -> None:
    await approve_due_commissions(session, now=utcnow())


register_schedule(APPROVE_DUE, APPROVE_DUE, lambda settings: settings.commission_calculation_frequency)
