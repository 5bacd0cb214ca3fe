"""Periodic schedules: one job per schedule and period, however often and by however many workers it ticks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from partners.db.engine import create_engine
from partners.db.session import Database
from partners.jobs.registry import get_handler, load_handlers
from partners.jobs.schedules import (
    Period,
    Schedule,
    enqueue_scheduled_jobs,
    period_key,
    register_schedule,
    registered_schedules,
)
from partners.jobs.worker import run_once
from partners.settings import Settings
from tests.jobs.support import T0, all_jobs

NIGHTLY = Schedule("test.nightly", "test.signal", "daily")


async def tick(database: Database, settings: Settings, now: datetime, schedules: list[Schedule]) -> None:
    async with database.write() as session:
        await enqueue_scheduled_jobs(session, settings, now=now, schedules=schedules)


@pytest.mark.parametrize(
    ("period", "moment", "key"),
    [
        ("hourly", datetime(2026, 11, 24, 10, 59, tzinfo=UTC), "2026-11-24T10"),
        ("daily", datetime(2026, 11, 24, 23, 59, tzinfo=UTC), "2026-11-24"),
        ("weekly", datetime(2026, 11, 24, tzinfo=UTC), "2026-W48"),
        ("weekly", datetime(2027, 1, 1, tzinfo=UTC), "2026-W53"),
        ("monthly", datetime(2026, 11, 30, 23, 59, tzinfo=UTC), "2026-11"),
    ],
)
def test_period_keys(period: Period, moment: datetime, key: str) -> None:
    assert period_key(period, moment) == key


def test_period_keys_are_utc() -> None:
    new_york_evening = datetime(2026, 11, 24, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert period_key("daily", new_york_evening) == "2026-11-25"
    assert period_key("hourly", new_york_evening) == "2026-11-25T01"


async def test_a_schedule_enqueues_once_per_period(database: Database, settings: Settings) -> None:
    await tick(database, settings, T0, [NIGHTLY])
    await tick(database, settings, T0, [NIGHTLY])
    await tick(database, settings, T0 + timedelta(hours=11), [NIGHTLY])
    jobs = await all_jobs(database)
    assert [(job.unique_key, job.payload) for job in jobs] == [
        ("schedule:test.nightly:2030-01-01", {"schedule": "test.nightly", "period": "2030-01-01"}),
    ]

    # Once it has run, the same period still doesn't come back; the next day does.
    assert await run_once(database, worker_id="w", now=T0) == 1
    await tick(database, settings, T0 + timedelta(hours=1), [NIGHTLY])
    await tick(database, settings, T0 + timedelta(days=1), [NIGHTLY])
    assert [job.unique_key for job in await all_jobs(database)] == [
        "schedule:test.nightly:2030-01-01",
        "schedule:test.nightly:2030-01-02",
    ]


async def test_a_period_read_from_the_settings(database: Database, settings: Settings) -> None:
    by_settings = Schedule("test.approvals", "test.signal", lambda s: s.commission_calculation_frequency)
    weekly = settings.model_copy(update={"commission_calculation_frequency": "weekly"})

    await tick(database, settings, T0, [by_settings])
    await tick(database, weekly, T0, [by_settings])
    await tick(database, weekly, T0 + timedelta(days=1), [by_settings])
    assert [job.unique_key for job in await all_jobs(database)] == [
        "schedule:test.approvals:2030-01-01",
        "schedule:test.approvals:2030-W01",
    ]


async def test_workers_ticking_together_enqueue_once(database: Database, settings: Settings) -> None:
    others = [Database(create_engine(settings.database_url)) for _ in range(3)]
    try:
        await asyncio.gather(*(tick(db, settings, T0, [NIGHTLY]) for db in [database, *others]))
    finally:
        for other in others:
            await other.dispose()
    assert len(await all_jobs(database)) == 1


def test_the_jobs_domain_declares_its_housekeeping_schedule() -> None:
    load_handlers()
    purge = next(schedule for schedule in registered_schedules() if schedule.name == "jobs.purge_done")
    assert purge.period == "daily"
    assert get_handler(purge.handler) is not None


def test_register_schedule_refuses_a_clash_or_an_unknown_period() -> None:
    load_handlers()
    with pytest.raises(ValueError, match="already registered"):
        register_schedule("jobs.purge_done", "jobs.purge_done", "weekly")
    with pytest.raises(ValueError, match="unknown schedule period"):
        register_schedule("test.yearly", "test.record", "yearly")  # type: ignore[arg-type]
    assert "test.yearly" not in {schedule.name for schedule in registered_schedules()}
