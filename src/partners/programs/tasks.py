"""The daily tier evaluation (automatic promotion and demotion), once per UTC day."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.types import utcnow
from partners.jobs.registry import job_handler
from partners.jobs.schedules import register_schedule
from partners.programs.service import evaluate_tiers

EVALUATE_TIERS = "programs.evaluate_tiers"


@job_handler(EVALUATE_TIERS)
async def evaluate(session: AsyncSession, payload: dict[str, Any]) -> None:
    period = payload.get("period")
    await evaluate_tiers(session, now=utcnow(), period_key=period if isinstance(period, str) else None)


register_schedule(EVALUATE_TIERS, EVALUATE_TIERS, "daily")
