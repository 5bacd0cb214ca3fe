from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from structlog.testing import capture_logs

from partners.db.session import Database
from partners.jobs.models import Job
from partners.mail import backends
from partners.mail.service import SEND_MAIL_JOB, queue_email
from partners.settings import Settings
from tests.mail.support import plain_text, run_jobs, sent_messages, use_mail_settings


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


async def test_queue_email_writes_a_job_in_the_callers_transaction(database: Database) -> None:
    async with database.write() as session:
        message_id = await queue_email(session, to="ana@example.com", subject="Hi", text="Hello")
    with pytest.raises(RuntimeError):
        async with database.write() as session:
            await queue_email(session, to="rolled@example.com", subject="Hi", text="Hello")
            raise RuntimeError("the business change failed")
    async with database.read() as session:
        jobs = list(await session.scalars(sa.select(Job)))
    assert [job.name for job in jobs] == [SEND_MAIL_JOB]
    assert jobs[0].payload["to"] == "ana@example.com"
    assert jobs[0].payload["message_id"] == message_id


async def test_file_backend_writes_one_eml_per_message(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_mail_settings(monkeypatch, settings)
    async with database.write() as session:
        await queue_email(session, to="ana@example.com", subject="Plain", text="Just text")
        await queue_email(session, to="bo@example.com", subject="Both", text="Text part", html="<p>HTML part</p>")
    assert await run_jobs(database) == 2
    messages = {message["To"]: message for message in sent_messages(settings)}
    assert set(messages) == {"ana@example.com", "bo@example.com"}
    assert messages["ana@example.com"]["Subject"] == "Plain"
    assert messages["ana@example.com"]["From"] == settings.email_from
    assert plain_text(messages["ana@example.com"]).strip() == "Just text"
    html = messages["bo@example.com"].get_body(preferencelist=("html",))
    assert html is not None and "<p>HTML part</p>" in html.get_content()
    async with database.read() as session:
        statuses = list(await session.scalars(sa.select(Job.status)))
    assert statuses == ["done", "done"]


def test_a_resent_message_overwrites_its_own_file(settings: Settings) -> None:
    payload = {"message_id": "<abc@x>", "to": "a@example.com", "subject": "S", "text": "T", "html": None}
    message = backends.build_message(settings, payload)
    first = backends.write_message_file(backends.Path(settings.email_dir), message)
    second = backends.write_message_file(backends.Path(settings.email_dir), message)
    assert first == second
    assert len(list(backends.Path(settings.email_dir).glob("*"))) == 1


async def test_console_backend_logs_the_message(settings: Settings) -> None:
    console = settings.model_copy(update={"email_backend": "console"})
    payload = {"message_id": "<c@x>", "to": "log@example.com", "subject": "Logged", "text": "body text"}
    with capture_logs() as logs:
        await backends.deliver(console, backends.build_message(console, payload))
    assert [(log["to"], log["subject"], log["text"].strip()) for log in logs] == [
        ("log@example.com", "Logged", "body text")
    ]
    assert not backends.Path(settings.email_dir).exists()


async def test_smtp_backend_delivers_to_a_real_smtp_server(
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: tuple[Controller, Inbox],
) -> None:
    controller, inbox = smtp_server
    smtp_settings = settings.model_copy(
        update={"email_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": controller.port}
    )
    use_mail_settings(monkeypatch, smtp_settings)
    async with database.write() as session:
        message_id = await queue_email(
            session, to="ana@example.com", subject="Over SMTP", text="Sent for real", html="<b>real</b>"
        )
    assert await run_jobs(database) == 1
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == settings.email_from
    assert envelope.rcpt_tos == ["ana@example.com"]
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Subject"] == "Over SMTP"
    assert received["Message-ID"] == message_id
    assert plain_text(received).strip() == "Sent for real"


async def test_an_unreachable_smtp_server_fails_the_job_for_a_retry(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp_settings = settings.model_copy(
        update={"email_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": free_port()}
    )
    use_mail_settings(monkeypatch, smtp_settings)
    async with database.write() as session:
        await queue_email(session, to="ana@example.com", subject="Lost", text="nobody listens")
    assert await run_jobs(database) == 1
    async with database.read() as session:
        job = (await session.scalars(sa.select(Job))).one()
    assert job.status == "queued"
    assert job.attempts == 1
    assert job.last_error is not None and "ConnectionRefusedError" in job.last_error
