"""The outbox API for other domains (`enqueue`) and the operations behind `partners jobs` (list, replay).

Nothing here commits: `enqueue` writes in the caller's transaction, so a job exists if and only if the
business change that asked for it committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.session import dialect_insert
from partners.db.types import utcnow
from partners.jobs.models import Job, JobStatus
from partners.kit.errors import Conflict, NotFound, Unprocessable

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_LIST_LIMIT = 100


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: dict[str, Any],
    *,
    unique_key: str | None = None,
    run_after: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> None:
    """Add a job in the caller's transaction. A `unique_key` already in the outbox makes this a no-op."""
    if max_attempts < 1:
        raise Unprocessable("max_attempts must be at least 1", field="max_attempts")
    now = utcnow()
    statement = dialect_insert(session, Job).values(
        name=name,
        payload=payload,
        status=JobStatus.QUEUED.value,
        attempts=0,
        max_attempts=max_attempts,
        run_after=run_after or now,
        unique_key=unique_key,
        created_at=now,
    )
    if unique_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=[Job.unique_key])
    await session.execute(statement)


async def list_jobs(
    session: AsyncSession, status: JobStatus | str | None = None, limit: int = DEFAULT_LIST_LIMIT
) -> list[Job]:
    """The newest jobs first, optionally only those in one status."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == _known_status(status))
    return list((await session.scalars(query)).all())


async def replay_job(session: AsyncSession, job_id: int, *, now: datetime | None = None) -> Job:
    """Send a dead job back to the queue with a fresh set of attempts. `last_error` is kept for reference."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", field="job_id")
    if job.status != JobStatus.DEAD:
        raise Conflict(f"job {job_id} is {job.status}, only dead jobs can be replayed", field="job_id")
    _requeue(job, now or utcnow())
    return job


async def replay_all_dead(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Replay every dead job; returns how many."""
    result = await session.execute(
        update(Job)
        .where(Job.status == JobStatus.DEAD.value)
        .values(
            status=JobStatus.QUEUED.value,
            attempts=0,
            run_after=now or utcnow(),
            locked_by=None,
            locked_until=None,
            finished_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def purge_done_jobs(session: AsyncSession, *, finished_before: datetime) -> int:
    """Delete done jobs finished before the cutoff (dead jobs stay until someone looks at them)."""
    result = await session.execute(
        delete(Job)
        .where(Job.status == JobStatus.DONE.value, Job.finished_at < finished_before)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


def _known_status(status: JobStatus | str) -> str:
    try:
        return JobStatus(status).value
    except ValueError:
        known = ", ".join(JobStatus)
        raise Unprocessable(f"unknown job status {status!r}; expected {known}", field="status") from None


def _requeue(job: Job, now: datetime) -> None:
    job.status = JobStatus.QUEUED.value
    job.attempts = 0
    job.run_after = now
    job.locked_by = None
    job.locked_until = None
    job.finished_at = None


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
