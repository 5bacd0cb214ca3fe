"""Drains the outbox: claims due jobs, runs each in its own transaction, retries, buries the dead.

Claiming: one write transaction selects due jobs (queued and due, or running with an expired lease) with
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers never claim the same row; SQLite serialises
write transactions (`BEGIN IMMEDIATE`), so there the select-then-update is already exclusive. A claimed job
is `running`, leased to the worker until `locked_until`, and its attempt is counted.

Running: a new write transaction locks the job row, checks the lease is still ours, runs the handler with that
session and marks the job done in the same transaction, so the handler's writes and the completion commit
together. While it runs, the row lock keeps other workers (SKIP LOCKED) off it even if the lease expires.
On an exception the transaction rolls back and a second transaction records the error and either schedules a
retry (exponential backoff with jitter) or, once the attempts are used up, marks the job dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import traceback
import uuid
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.session import Database
from partners.db.types import utcnow
from partners.jobs.models import Job, JobStatus
from partners.jobs.registry import get_handler, handler_names, load_handlers
from partners.jobs.schedules import enqueue_scheduled_jobs
from partners.kit.logging import get_logger
from partners.settings import Settings

DEFAULT_BATCH_SIZE = 10
LEASE = timedelta(minutes=5)
IDLE_POLL_SECONDS = 0.5
ERROR_PAUSE_SECONDS = 5.0
SCHEDULE_TICK_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0
ERROR_TEXT_LIMIT = 4000
LEASE_EXPIRED_ON_LAST_ATTEMPT = "the lease expired during the last attempt (did the worker stop?)"

logger = get_logger(__name__)
jobs_processed = Counter("partners_jobs", "Jobs processed by this process's workers", ["name", "outcome"])


def backoff_delay(attempts: int, jitter: float) -> timedelta:
    """The wait after `attempts` failed attempts: 2 s · 2^(attempts-1), capped at an hour, plus up to 50%
    of it as jitter (`jitter` in [0, 1)) so jobs that failed together don't retry together."""
    exponent = min(max(attempts - 1, 0), 30)
    base = min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_CAP_SECONDS)
    return timedelta(seconds=base * (1 + jitter / 2))


def default_worker_id(kind: str) -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_once(
    database: Database,
    *,
    worker_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> int:
    """Claim up to `batch_size` due jobs and run them one by one. Returns how many were claimed.

    `now` fixes the clock (tests); without it every step reads the real UTC time.
    """
    job_ids = await claim_jobs(database, worker_id=worker_id, batch_size=batch_size, now=now or utcnow(), lease=lease)
    for job_id in job_ids:
        await run_claimed_job(database, job_id, worker_id=worker_id, now=now)
    return len(job_ids)


async def claim_jobs(
    database: Database, *, worker_id: str, batch_size: int, now: datetime, lease: timedelta = LEASE
) -> list[int]:
    """Lease due jobs to `worker_id`; returns their ids (oldest due first)."""
    claimable = _claimable(now)
    async with database.read() as session:
        if await session.scalar(select(Job.id).where(claimable).limit(1)) is None:
            return []  # idle: don't take SQLite's write lock just to find nothing
    claimed: list[int] = []
    async with database.write() as session:
        query = (
            select(Job)
            .where(claimable)
            .order_by(Job.run_after, Job.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        for job in (await session.scalars(query)).all():
            if job.attempts >= job.max_attempts:
                _bury(job, f"{job.last_error or ''}\n{LEASE_EXPIRED_ON_LAST_ATTEMPT}", now)
                jobs_processed.labels(name=_metric_name(job.name), outcome="dead").inc()
                continue
            job.status = JobStatus.RUNNING.value
            job.attempts += 1
            job.locked_by = worker_id
            job.locked_until = now + lease
            claimed.append(job.id)
    return claimed


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(Job.status == JobStatus.QUEUED.value, Job.run_after <= now),
        and_(Job.status == JobStatus.RUNNING.value, Job.locked_until < now),
    )


async def run_claimed_job(database: Database, job_id: int, *, worker_id: str, now: datetime | None = None) -> None:
    """Run a job this worker claimed; does nothing if another worker has since taken over its lease."""
    try:
        name, outcome = await _run_in_transaction(database, job_id, worker_id, now)
    except Exception as error:
        name, outcome = await _record_failure(database, job_id, worker_id, error, now or utcnow())
    if outcome:
        jobs_processed.labels(name=_metric_name(name), outcome=outcome).inc()


async def _run_in_transaction(database: Database, job_id: int, worker_id: str, now: datetime | None) -> tuple[str, str]:
    async with database.write() as session:
        job = await _own_job(session, job_id, worker_id)
        if job is None:
            logger.info("job lease lost before it ran", job_id=job_id, worker_id=worker_id)
            return "", ""
        handler = get_handler(job.name)
        if handler is None:
            _bury(job, f"no handler is registered for job name {job.name!r}", now or utcnow())
            logger.error("job has no handler", job_id=job_id, name=job.name)
            return job.name, "dead"
        await handler(session, job.payload)
        job.status = JobStatus.DONE.value
        job.finished_at = now or utcnow()
        job.locked_by = None
        job.locked_until = None
        return job.name, "done"


async def _record_failure(
    database: Database, job_id: int, worker_id: str, error: Exception, now: datetime
) -> tuple[str, str]:
    try:
        async with database.write() as session:
            job = await _own_job(session, job_id, worker_id)
            if job is None:
                return "", ""
            job.last_error = _describe(error)
            if job.attempts >= job.max_attempts:
                _bury(job, job.last_error, now)
                logger.error("job is dead", job_id=job_id, name=job.name, attempts=job.attempts, error=repr(error))
                return job.name, "dead"
            job.status = JobStatus.QUEUED.value
            job.run_after = now + backoff_delay(job.attempts, random.random())
            job.locked_by = None
            job.locked_until = None
            logger.warning("job failed; will retry", job_id=job_id, name=job.name, error=repr(error))
            return job.name, "retry"
    except Exception as failure:
        # The lease will expire and another claim will retry the job.
        logger.error("could not record a job failure", job_id=job_id, error=repr(failure))
        return "", ""


async def _own_job(session: AsyncSession, job_id: int, worker_id: str) -> Job | None:
    """The job, row-locked, if this worker still holds its lease."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None or job.status != JobStatus.RUNNING or job.locked_by != worker_id:
        return None
    return job


def _bury(job: Job, error: str, now: datetime) -> None:
    job.status = JobStatus.DEAD.value
    job.last_error = error.strip()[-ERROR_TEXT_LIMIT:]
    job.finished_at = now
    job.locked_by = None
    job.locked_until = None


def _describe(error: Exception) -> str:
    return "".join(traceback.format_exception(error))[-ERROR_TEXT_LIMIT:]


def _metric_name(name: str) -> str:
    return name if get_handler(name) is not None else "unknown"


async def tick_schedules(database: Database, settings: Settings, *, now: datetime | None = None) -> None:
    async with database.write() as session:
        await enqueue_scheduled_jobs(session, settings, now=now)


async def run_worker(
    database: Database,
    settings: Settings,
    *,
    worker_id: str,
    stop_event: asyncio.Event,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> None:
    """Poll until `stop_event` is set: tick the schedules every SCHEDULE_TICK_SECONDS, run due jobs."""
    load_handlers()
    logger.info("worker started", worker_id=worker_id, handlers=handler_names())
    next_tick = 0.0
    while not stop_event.is_set():
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + SCHEDULE_TICK_SECONDS
            await _tick_schedules_logging_errors(database, settings, worker_id)
        try:
            ran = await run_once(database, worker_id=worker_id, batch_size=batch_size)
        except Exception as error:
            logger.error("worker loop failed; pausing", worker_id=worker_id, error=repr(error))
            await _wait(stop_event, ERROR_PAUSE_SECONDS)
            continue
        if ran == 0:
            await _wait(stop_event, IDLE_POLL_SECONDS)
    logger.info("worker stopped", worker_id=worker_id)


async def _tick_schedules_logging_errors(database: Database, settings: Settings, worker_id: str) -> None:
    """A broken schedule must not stop the jobs from running."""
    try:
        await tick_schedules(database, settings)
    except Exception as error:
        logger.error("schedule tick failed", worker_id=worker_id, error=repr(error))


async def _wait(stop_event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), seconds)


class EmbeddedWorker:
    """The in-process worker `partners serve` runs beside the app (PARTNERS_EMBEDDED_WORKER)."""

    def __init__(self, database: Database, settings: Settings, *, worker_id: str | None = None) -> None:
        self.database = database
        self.settings = settings
        self.worker_id = worker_id or default_worker_id("embedded")
        self._stop_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stop_event.clear()
        self._task = asyncio.create_task(
            run_worker(self.database, self.settings, worker_id=self.worker_id, stop_event=self._stop_event),
            name=f"jobs-worker {self.worker_id}",
        )

    async def stop(self) -> None:
        """Let the job in hand finish (up to STOP_TIMEOUT_SECONDS), then cancel; a cancelled job's lease
        expires and another worker runs it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop_event.set()
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("embedded worker did not stop in time; cancelled", worker_id=self.worker_id)
