"""Hourly SLA alert: the disputes inbox hears once of each dispute waiting on staff past the target.

Idempotent: the schedule's key runs it once an hour, and each dispute is marked when announced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.types import utcnow
from partners.disputes.service import alert_breaches
from partners.jobs.registry import job_handler
from partners.jobs.schedules import register_schedule
from partners.settings import get_settings

SLA_ALERTS = "disputes.sla_alerts"


@job_handler(SLA_ALERTS)
async def sla_alerts(session: AsyncSession, payload: dict[str, Any]) -> None:
    await alert_breaches(session, get_settings(), now=utcnow())


register_schedule(SLA_ALERTS, SLA_ALERTS, "hourly")
