"""Payout jobs: execute an approved batch, poll a rail, tell the host about platform credit, and the daily
check that creates scheduled payouts (once per program period, by key).

Handlers are not given the settings, so they read `get_settings()` (the environment the worker runs with);
tests point it at their settings.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from partners.affiliates.models import Partner
from partners.db.types import utcnow
from partners.jobs.registry import job_handler
from partners.jobs.schedules import register_schedule
from partners.payouts import batches, service
from partners.payouts.providers.base import ProviderError
from partners.settings import Settings, get_settings

SCHEDULED_PAYOUTS_JOB = "payouts.scheduled"
HOST_CALLBACK_TIMEOUT_SECONDS = 10.0
HOST_CALLBACK_EVENT = "payout.paid"


class HostCallbackError(ProviderError):
    """The host did not take the platform-credit callback; the job retries with backoff."""


@job_handler(batches.EXECUTE_BATCH_JOB)
async def execute_batch(session: AsyncSession, payload: dict[str, Any]) -> None:
    await batches.execute_batch(session, get_settings(), int(payload["batch_id"]), now=utcnow())


@job_handler(batches.POLL_RAIL_JOB)
async def poll_rail(session: AsyncSession, payload: dict[str, Any]) -> None:
    await batches.poll_rail(session, get_settings(), int(payload["batch_id"]), str(payload["method"]), now=utcnow())


def _period_time(payload: dict[str, Any]) -> datetime:
    """The schedule's day (payload "period" is YYYY-MM-DD) at noon UTC, else now."""
    period = payload.get("period")
    if isinstance(period, str):
        try:
            return datetime.combine(date.fromisoformat(period), time(12), tzinfo=UTC)
        except ValueError:
            pass
    return utcnow()


@job_handler(SCHEDULED_PAYOUTS_JOB)
async def scheduled_payouts(session: AsyncSession, payload: dict[str, Any]) -> None:
    await service.run_scheduled_payouts(session, get_settings(), now=_period_time(payload))


register_schedule(SCHEDULED_PAYOUTS_JOB, SCHEDULED_PAYOUTS_JOB, "daily")


# --- the host's platform-credit callback -----------------------------------------------------------------


def callback_body(payout_id: int, partner: Partner, *, amount: int, currency: str, reference: str) -> str:
    return json.dumps(
        {
            "type": HOST_CALLBACK_EVENT,
            "data": {
                "payout_id": payout_id,
                "partner_id": partner.id,
                "partner_external_id": partner.external_id,
                "amount": amount,
                "currency": currency,
                "account_reference": reference,
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def signed_headers(settings: Settings, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers; `webhook-id` is the payout's, so a retried delivery is the same message."""
    signature = Webhook(settings.host_callback_secret).sign(message_id, now, body)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


@job_handler(service.HOST_CALLBACK_JOB)
async def notify_host(session: AsyncSession, payload: dict[str, Any]) -> None:
    """POST the signed "payout.paid" callback so the host credits the partner's wallet. Idempotent by payout
    id: the host dedupes on `webhook-id` = "payout_{id}"."""
    settings = get_settings()
    if not settings.host_callback_url or not settings.host_callback_secret:
        raise HostCallbackError("PARTNERS_HOST_CALLBACK_URL and PARTNERS_HOST_CALLBACK_SECRET must be set")
    payout = await service.get_payout(session, int(payload["payout_id"]), for_update=True)
    details = service.decrypt_details(settings, payout.details_encrypted, payout.method)
    partner = await session.get(Partner, payout.partner_id)
    assert partner is not None
    body = callback_body(
        payout.id,
        partner,
        amount=payout.amount,
        currency=payout.currency,
        reference=details.get("account_reference") or str(partner.id),
    )
    now = utcnow()
    headers = signed_headers(settings, f"payout_{payout.id}", body, now)
    async with httpx.AsyncClient(timeout=HOST_CALLBACK_TIMEOUT_SECONDS) as client:
        response = await client.post(settings.host_callback_url, content=body.encode(), headers=headers)
    if response.status_code >= 300:
        raise HostCallbackError(f"the host answered {response.status_code}: {response.text[:200]}")
    payout.host_notified_at = payout.host_notified_at or now
