"""Mail test helpers: point the "mail.send" handler at the test settings, run the outbox, read .eml files."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from partners.db.session import Database
from partners.jobs.worker import run_once
from partners.mail import tasks
from partners.settings import Settings


def use_mail_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The handler reads get_settings(); in tests it must see the test's settings instead."""
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)


async def run_jobs(database: Database) -> int:
    """Run every due job (the outbox) until none is left; returns how many ran."""
    total = 0
    while ran := await run_once(database, worker_id="tests"):
        total += ran
    return total


def sent_messages(settings: Settings) -> list[EmailMessage]:
    """The messages the file backend wrote, oldest first."""
    directory = Path(settings.email_dir)
    if not directory.exists():
        return []
    paths = sorted(directory.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
    return [_parse(path) for path in paths]


def messages_to(settings: Settings, address: str) -> list[EmailMessage]:
    return [message for message in sent_messages(settings) if message["To"] == address]


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def _parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message
