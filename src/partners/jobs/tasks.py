"""The jobs domain's own housekeeping: done jobs are deleted after a while so the outbox stays small.

The retention is longer than any schedule period, so a schedule's unique key outlives its period.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.types import utcnow
from partners.jobs.registry import job_handler
from partners.jobs.schedules import register_schedule
from partners.jobs.service import purge_done_jobs

DONE_JOB_RETENTION = timedelta(days=90)
PURGE_DONE_JOBS = "jobs.purge_done"


@job_handler(PURGE_DONE_JOBS)
async def purge_done(session: AsyncSession, payload: dict[str, Any]) -> None:
    await purge_done_jobs(session, finished_before=utcnow() - DONE_JOB_RETENTION)


register_schedule(PURGE_DONE_JOBS, PURGE_DONE_JOBS, "daily")
