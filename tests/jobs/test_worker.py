"""The worker: claim, run, atomic completion, retries with backoff, dead letters, leases, concurrency."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from partners.db.engine import create_engine
from partners.db.session import Database
from partners.jobs.models import Job, JobStatus
from partners.jobs.service import enqueue
from partners.jobs.worker import (
    LEASE,
    EmbeddedWorker,
    backoff_delay,
    claim_jobs,
    run_claimed_job,
    run_once,
    run_worker,
)
from partners.settings import Settings
from tests.jobs.support import T0, Signals, all_jobs, effect_keys, only_job

SECOND = timedelta(seconds=1)


async def test_a_due_job_runs_and_is_done(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "a"}, run_after=T0)

    assert await run_once(effects, worker_id="w", now=T0 - SECOND) == 0
    assert await run_once(effects, worker_id="w", now=T0) == 1

    job = await only_job(effects)
    assert (job.status, job.attempts, job.finished_at, job.locked_by) == ("done", 1, T0, None)
    assert await effect_keys(effects) == ["a"]
    assert await run_once(effects, worker_id="w", now=T0 + timedelta(days=1)) == 0


async def test_jobs_run_oldest_due_first_in_batches(effects: Database) -> None:
    async with effects.write() as session:
        for minute in (3, 1, 2):
            await enqueue(session, "test.record", {"key": f"m{minute}"}, run_after=T0 + minute * 60 * SECOND)

    assert await run_once(effects, worker_id="w", batch_size=2, now=T0 + timedelta(hours=1)) == 2
    assert await run_once(effects, worker_id="w", batch_size=2, now=T0 + timedelta(hours=1)) == 1
    assert await effect_keys(effects) == ["m1", "m2", "m3"]


async def test_handler_effects_and_completion_commit_together(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record_then_fail", {"key": "half-done"}, run_after=T0, max_attempts=2)

    await run_once(effects, worker_id="w", now=T0)
    job = await only_job(effects)
    assert job.status == "queued" and "failed after writing" in (job.last_error or "")
    assert await effect_keys(effects) == []

    await run_once(effects, worker_id="w", now=job.run_after)
    assert (await only_job(effects)).status == "dead"
    assert await effect_keys(effects) == []


async def test_a_failing_job_backs_off_longer_each_time_then_dies(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.fail", {}, run_after=T0, max_attempts=3)

    now = T0
    delays = []
    for attempt in (1, 2):
        assert await run_once(effects, worker_id="w", now=now) == 1
        job = await only_job(effects)
        assert (job.status, job.attempts, job.locked_by) == ("queued", attempt, None)
        assert "RuntimeError: boom" in (job.last_error or "")
        delays.append(job.run_after - now)
        assert await run_once(effects, worker_id="w", now=job.run_after - SECOND) == 0
        now = job.run_after
    assert SECOND <= delays[0] < delays[1]

    assert await run_once(effects, worker_id="w", now=now) == 1
    job = await only_job(effects)
    assert (job.status, job.attempts, job.finished_at) == ("dead", 3, now)
    assert "RuntimeError: boom" in (job.last_error or "")
    assert await run_once(effects, worker_id="w", now=now + timedelta(days=30)) == 0


def test_backoff_doubles_with_bounded_jitter_and_is_capped() -> None:
    assert backoff_delay(1, 0.0) == timedelta(seconds=2)
    assert backoff_delay(2, 0.0) == timedelta(seconds=4)
    assert backoff_delay(5, 0.0) == timedelta(seconds=32)
    assert backoff_delay(5, 0.999) < timedelta(seconds=48)
    assert backoff_delay(3, 0.999) < backoff_delay(4, 0.0)
    assert backoff_delay(50, 0.0) == timedelta(hours=1)
    assert backoff_delay(10_000, 0.999) < timedelta(hours=1.5)


async def test_an_unknown_handler_goes_dead_with_a_clear_error(database: Database) -> None:
    async with database.write() as session:
        await enqueue(session, "no.such.handler", {}, run_after=T0)

    assert await run_once(database, worker_id="w", now=T0) == 1
    job = await only_job(database)
    assert job.status == "dead"
    assert job.last_error == "no handler is registered for job name 'no.such.handler'"


async def test_an_expired_lease_is_claimed_again(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "a"}, run_after=T0)
    [job_id] = await claim_jobs(effects, worker_id="crashed", batch_size=10, now=T0)
    leased = await only_job(effects)
    assert (leased.status, leased.locked_by, leased.locked_until) == ("running", "crashed", T0 + LEASE)

    assert await run_once(effects, worker_id="rescuer", now=T0 + LEASE - SECOND) == 0
    assert await run_once(effects, worker_id="rescuer", now=T0 + LEASE + SECOND) == 1
    job = await only_job(effects)
    assert (job.status, job.attempts) == ("done", 2)

    # The first worker wakes up and tries to run the job it had claimed: its lease is gone, nothing runs.
    await run_claimed_job(effects, job_id, worker_id="crashed", now=T0 + LEASE + 2 * SECOND)
    assert await effect_keys(effects) == ["a"]
    assert (await only_job(effects)).status == "done"


async def test_a_lease_that_expires_on_the_last_attempt_buries_the_job(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "a"}, run_after=T0, max_attempts=1)
    await claim_jobs(effects, worker_id="crashed", batch_size=10, now=T0)

    assert await run_once(effects, worker_id="rescuer", now=T0 + LEASE + SECOND) == 0
    job = await only_job(effects)
    assert job.status == "dead" and "lease expired" in (job.last_error or "")
    assert await effect_keys(effects) == []


async def test_concurrent_workers_run_each_job_exactly_once(effects: Database, database_url: str) -> None:
    if effects.dialect == "sqlite":
        pytest.skip("SQLite serialises writers; SKIP LOCKED claiming is a PostgreSQL concern")
    keys = [f"job-{number}" for number in range(50)]
    async with effects.write() as session:
        for key in keys:
            await enqueue(session, "test.record", {"key": key}, run_after=T0)

    async def drain(database: Database, worker_id: str) -> int:
        total = 0
        while ran := await run_once(database, worker_id=worker_id, batch_size=2, now=T0):
            total += ran
        return total

    others = [Database(create_engine(database_url)) for _ in range(3)]
    try:
        counts = await asyncio.gather(
            *(drain(database, f"worker-{number}") for number, database in enumerate([effects, *others]))
        )
    finally:
        for other in others:
            await other.dispose()

    assert sum(counts) == 50
    assert sorted(await effect_keys(effects)) == sorted(keys)
    assert {(job.status, job.attempts) for job in await all_jobs(effects)} == {("done", 1)}


async def test_claiming_skips_jobs_another_transaction_locked(effects: Database, database_url: str) -> None:
    if effects.dialect == "sqlite":
        pytest.skip("SQLite has no row locks; its writers are serialised")
    async with effects.write() as session:
        for key in "abcd":
            await enqueue(session, "test.record", {"key": key}, run_after=T0)

    holder = Database(create_engine(database_url))
    try:
        async with holder.write() as session:
            await session.execute(select(Job.id).order_by(Job.id).limit(2).with_for_update())
            # Another worker's claim holds jobs a and b: this one takes c and d without waiting.
            assert await asyncio.wait_for(run_once(effects, worker_id="w", now=T0), 10) == 2
            assert await effect_keys(effects) == ["c", "d"]
    finally:
        await holder.dispose()


async def test_run_worker_runs_jobs_and_ticks_schedules_until_stopped(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        await enqueue(session, "test.signal", {})
    stop_event = asyncio.Event()
    task = asyncio.create_task(run_worker(database, settings, worker_id="loop", stop_event=stop_event))
    assert Signals.ran is not None
    await asyncio.wait_for(Signals.ran.wait(), 30)
    stop_event.set()
    await asyncio.wait_for(task, 30)

    jobs = {job.name: job for job in await all_jobs(database)}
    assert jobs["test.signal"].status == JobStatus.DONE
    assert jobs["jobs.purge_done"].unique_key is not None
    assert jobs["jobs.purge_done"].unique_key.startswith("schedule:jobs.purge_done:")


async def test_embedded_worker_starts_and_stops(database: Database, settings: Settings) -> None:
    worker = EmbeddedWorker(database, settings)
    await worker.start()
    async with database.write() as session:
        await enqueue(session, "test.signal", {})
    assert Signals.ran is not None
    await asyncio.wait_for(Signals.ran.wait(), 30)
    await worker.stop()
    await worker.stop()  # stopping twice is harmless

    job = next(job for job in await all_jobs(database) if job.name == "test.signal")
    assert job.status == JobStatus.DONE
    assert job.attempts == 1
