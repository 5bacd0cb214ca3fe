"""The "mail.send" job handler.

Handlers are not given the settings, so the backend comes from `get_settings()` (the environment), the same
settings `partners serve` and `partners worker` run with. Delivery is at-least-once: a retried job sends the
same Message-ID again (the file backend overwrites its own file).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from partners.jobs.registry import job_handler
from partners.mail.backends import build_message, deliver
from partners.mail.service import SEND_MAIL_JOB
from partners.settings import get_settings


@job_handler(SEND_MAIL_JOB)
async def send_email(session: AsyncSession, payload: dict[str, Any]) -> None:
    settings = get_settings()
    await deliver(settings, build_message(settings, payload))
