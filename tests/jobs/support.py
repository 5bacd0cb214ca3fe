"""Test job handlers (registered on import), the side table they write to, and helpers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.session import Database
from partners.jobs.models import Job
from partners.jobs.registry import job_handler

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

effects_metadata = sa.MetaData()
job_effects = sa.Table(
    "test_job_effects",
    effects_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_key", sa.String(100), nullable=False),
)


class Flaky:
    """Whether the `test.flaky` handler fails; reset before every test."""

    broken = True


class Signals:
    """Set by the `test.signal` handler so a test can wait for a background worker to run a job."""

    ran: asyncio.Event | None = None


@job_handler("test.record")
async def record(session: AsyncSession, payload: dict[str, Any]) -> None:
    await session.execute(job_effects.insert().values(job_key=payload["key"]))
    await asyncio.sleep(0)  # let concurrent workers interleave


@job_handler("test.record_then_fail")
async def record_then_fail(session: AsyncSession, payload: dict[str, Any]) -> None:
    await session.execute(job_effects.insert().values(job_key=payload["key"]))
    raise RuntimeError("failed after writing")


@job_handler("test.fail")
async def fail(session: AsyncSession, payload: dict[str, Any]) -> None:
    raise RuntimeError("boom")


@job_handler("test.flaky")
async def flaky(session: AsyncSession, payload: dict[str, Any]) -> None:
    if Flaky.broken:
        raise RuntimeError("still broken")
    await session.execute(job_effects.insert().values(job_key=payload["key"]))


@job_handler("test.signal")
async def signal(session: AsyncSession, payload: dict[str, Any]) -> None:
    assert Signals.ran is not None
    Signals.ran.set()


async def effect_keys(database: Database) -> list[str]:
    async with database.read() as session:
        keys = await session.scalars(sa.select(job_effects.c.job_key).order_by(job_effects.c.id))
        return list(keys.all())


async def all_jobs(database: Database) -> list[Job]:
    async with database.read() as session:
        return list((await session.scalars(sa.select(Job).order_by(Job.id))).all())


async def only_job(database: Database) -> Job:
    jobs = await all_jobs(database)
    assert len(jobs) == 1, jobs
    return jobs[0]
