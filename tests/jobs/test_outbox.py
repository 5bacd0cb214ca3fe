"""enqueue writes in the caller's transaction, unique keys make it idempotent; list, replay, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from partners.db.session import Database
from partners.jobs.models import JobStatus
from partners.jobs.service import enqueue, list_jobs, purge_done_jobs, replay_all_dead, replay_job
from partners.jobs.worker import run_once
from partners.kit.errors import Conflict, NotFound, Unprocessable
from tests.jobs.support import T0, Flaky, all_jobs, effect_keys, only_job


async def test_enqueue_commits_with_the_callers_transaction(database: Database) -> None:
    async with database.write() as session:
        await enqueue(session, "test.record", {"key": "a", "amount": 100}, run_after=T0, max_attempts=3)

    job = await only_job(database)
    assert (job.name, job.payload, job.status) == ("test.record", {"key": "a", "amount": 100}, "queued")
    assert (job.attempts, job.max_attempts, job.run_after) == (0, 3, T0)
    assert job.unique_key is None and job.locked_by is None and job.finished_at is None


async def test_enqueue_in_a_rolled_back_transaction_leaves_no_job(database: Database) -> None:
    with pytest.raises(RuntimeError, match="business failure"):
        async with database.write() as session:
            await enqueue(session, "test.record", {"key": "a"})
            raise RuntimeError("business failure")

    assert await all_jobs(database) == []


async def test_a_unique_key_is_enqueued_once(database: Database) -> None:
    async with database.write() as session:
        await enqueue(session, "test.record", {"key": "first"}, unique_key="order:1")
        await enqueue(session, "test.record", {"key": "same transaction"}, unique_key="order:1")
    async with database.write() as session:
        await enqueue(session, "test.record", {"key": "later"}, unique_key="order:1")
        await enqueue(session, "test.record", {"key": "other"}, unique_key="order:2")
        await enqueue(session, "test.record", {"key": "no key 1"})
        await enqueue(session, "test.record", {"key": "no key 2"})

    jobs = await all_jobs(database)
    assert [(job.unique_key, job.payload["key"]) for job in jobs] == [
        ("order:1", "first"),
        ("order:2", "other"),
        (None, "no key 1"),
        (None, "no key 2"),
    ]


async def test_enqueue_refuses_zero_attempts(database: Database) -> None:
    async with database.write() as session:
        with pytest.raises(Unprocessable) as caught:
            await enqueue(session, "test.record", {}, max_attempts=0)
    assert caught.value.field == "max_attempts"


async def test_list_jobs_newest_first_and_by_status(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "a"}, run_after=T0)
        await enqueue(session, "test.fail", {}, run_after=T0, max_attempts=1)
        await enqueue(session, "test.record", {"key": "later"}, run_after=T0 + timedelta(days=1))
    await run_once(effects, worker_id="w", now=T0)

    async with effects.read() as session:
        newest_first = [(job.name, job.status) for job in await list_jobs(session)]
        dead = [job.name for job in await list_jobs(session, status=JobStatus.DEAD)]
        queued = [job.payload for job in await list_jobs(session, status="queued")]
        with pytest.raises(Unprocessable) as unknown:
            await list_jobs(session, status="stuck")
        limited = await list_jobs(session, limit=1)
    assert newest_first == [("test.record", "queued"), ("test.fail", "dead"), ("test.record", "done")]
    assert dead == ["test.fail"]
    assert queued == [{"key": "later"}]
    assert unknown.value.field == "status"
    assert [job.payload for job in limited] == [{"key": "later"}]


async def test_replay_brings_a_dead_job_back_and_it_then_runs(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.flaky", {"key": "k"}, run_after=T0, max_attempts=1)
    assert await run_once(effects, worker_id="w", now=T0) == 1
    dead = await only_job(effects)
    assert dead.status == "dead" and "still broken" in (dead.last_error or "")

    replayed_at = T0 + timedelta(hours=1)
    async with effects.write() as session:
        job = await replay_job(session, dead.id, now=replayed_at)
    assert (job.status, job.attempts, job.run_after, job.finished_at) == ("queued", 0, replayed_at, None)

    Flaky.broken = False
    assert await run_once(effects, worker_id="w", now=replayed_at) == 1
    assert (await only_job(effects)).status == "done"
    assert await effect_keys(effects) == ["k"]


async def test_only_dead_jobs_can_be_replayed(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "k"}, run_after=T0)
    await run_once(effects, worker_id="w", now=T0)
    done = await only_job(effects)

    async with effects.write() as session:
        with pytest.raises(Conflict, match="is done"):
            await replay_job(session, done.id)
        with pytest.raises(NotFound) as missing:
            await replay_job(session, done.id + 1000)
    assert missing.value.field == "job_id"


async def test_replay_all_dead(database: Database) -> None:
    async with database.write() as session:
        for _ in range(2):
            await enqueue(session, "test.fail", {}, run_after=T0, max_attempts=1)
        await enqueue(session, "test.record", {"key": "not due"}, run_after=T0 + timedelta(days=1))
    await run_once(database, worker_id="w", now=T0)

    async with database.write() as session:
        assert await replay_all_dead(session, now=T0) == 2
    assert [(job.status, job.attempts) for job in await all_jobs(database)] == [("queued", 0)] * 3
    async with database.write() as session:
        assert await replay_all_dead(session) == 0


async def test_purge_deletes_only_done_jobs_finished_before_the_cutoff(effects: Database) -> None:
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "old"}, run_after=T0)
        await enqueue(session, "test.fail", {}, run_after=T0, max_attempts=1)
    await run_once(effects, worker_id="w", now=T0)
    async with effects.write() as session:
        await enqueue(session, "test.record", {"key": "recent"}, run_after=T0)
    await run_once(effects, worker_id="w", now=T0 + timedelta(days=2))

    async with effects.write() as session:
        assert await purge_done_jobs(session, finished_before=T0 + timedelta(days=1)) == 1
    remaining = [(job.name, job.status) for job in await all_jobs(effects)]
    assert remaining == [("test.fail", "dead"), ("test.record", "done")]
