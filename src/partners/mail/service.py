"""Outgoing email through the outbox: `queue_email` writes a "mail.send" job in the caller's transaction.

Nothing is sent inside a request. The message exists if and only if the business change that asked for it
commits; a worker then sends it with the configured backend (see backends.py).
"""

from __future__ import annotations

from email.utils import make_msgid

from sqlalchemy.ext.asyncio import AsyncSession

from partners.jobs.service import enqueue

SEND_MAIL_JOB = "mail.send"
MESSAGE_ID_DOMAIN = "partners.namaskah.local"


async def queue_email(session: AsyncSession, *, to: str, subject: str, text: str, html: str | None = None) -> str:
    """Enqueue one email; returns its Message-ID (fixed now, so a retried send carries the same id)."""
    message_id = make_msgid(domain=MESSAGE_ID_DOMAIN)
    payload = {"message_id": message_id, "to": to, "subject": subject, "text": text, "html": html}
    await enqueue(session, SEND_MAIL_JOB, payload, unique_key=f"mail:{message_id}")
    return message_id
