"""Periodic jobs declared in code.

Each worker loop ticks now and then; a tick enqueues every schedule's job for the current period (in UTC)
with the unique key `schedule:{name}:{period_key}`, so however many workers tick, a period runs once.
A schedule's job gets the payload `{"schedule": name, "period": period_key}`.

A domain declares its schedules next to its handlers (in its tasks.py):
    register_schedule("commissions.approve", "commissions.approve",
                      lambda settings: settings.commission_calculation_frequency)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.types import utcnow
from partners.jobs.service import enqueue
from partners.settings import Settings

Period = Literal["hourly", "daily", "weekly", "monthly"]
PeriodSource = Period | Callable[[Settings], Period]
PERIODS: tuple[str, ...] = get_args(Period)


@dataclass(frozen=True)
class Schedule:
    name: str
    handler: str
    period: PeriodSource

    def period_for(self, settings: Settings) -> Period:
        period = self.period(settings) if callable(self.period) else self.period
        _check_period(period)
        return period


_schedules: dict[str, Schedule] = {}


def register_schedule(name: str, handler: str, period: PeriodSource) -> Schedule:
    """Declare a periodic job. `period` is fixed, or a function of the settings (read at every tick)."""
    if not callable(period):
        _check_period(period)
    schedule = Schedule(name=name, handler=handler, period=period)
    existing = _schedules.get(name)
    if existing is not None and existing != schedule:
        raise ValueError(f"schedule {name!r} is already registered as {existing}")
    _schedules[name] = schedule
    return schedule


def registered_schedules() -> tuple[Schedule, ...]:
    return tuple(_schedules.values())


def period_key(period: Period, now: datetime) -> str:
    """The UTC period `now` falls in: 2026-11-24T10 (hourly), 2026-11-24, 2026-W48 (ISO week), 2026-11."""
    _check_period(period)
    now = now.astimezone(UTC)
    if period == "hourly":
        return now.strftime("%Y-%m-%dT%H")
    if period == "daily":
        return now.strftime("%Y-%m-%d")
    if period == "weekly":
        iso = now.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return now.strftime("%Y-%m")


async def enqueue_scheduled_jobs(
    session: AsyncSession,
    settings: Settings,
    *,
    now: datetime | None = None,
    schedules: Iterable[Schedule] | None = None,
) -> None:
    """Enqueue each schedule's job for the current period; periods already enqueued are left alone."""
    now = now or utcnow()
    for schedule in registered_schedules() if schedules is None else schedules:
        key = period_key(schedule.period_for(settings), now)
        await enqueue(
            session,
            schedule.handler,
            {"schedule": schedule.name, "period": key},
            unique_key=f"schedule:{schedule.name}:{key}",
            run_after=now,
        )


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"unknown schedule period {period!r}; expected one of {', '.join(PERIODS)}")
