"""Email backends, chosen by PARTNERS_EMAIL_BACKEND.

- console: log the message (development);
- file: write one `.eml` file per message into PARTNERS_EMAIL_DIR (development and tests); the file is
  named after the Message-ID, so a retried job overwrites its own file instead of adding a second one;
- smtp: smtplib in a worker thread, to SMTP_HOST:SMTP_PORT (plain SMTP, no STARTTLS or login: point it
  at a local relay / MTA).
"""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from anyio import to_thread

from partners.kit.logging import get_logger
from partners.settings import Settings

SMTP_TIMEOUT_SECONDS = 30.0


def build_message(settings: Settings, payload: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Message-ID"] = payload["message_id"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    return message


async def deliver(settings: Settings, message: EmailMessage) -> None:
    if settings.email_backend == "console":
        log_message(message)
    elif settings.email_backend == "file":
        await to_thread.run_sync(write_message_file, Path(settings.email_dir), message)
    else:
        await to_thread.run_sync(send_over_smtp, settings.smtp_host, settings.smtp_port, message)


def log_message(message: EmailMessage) -> None:
    body = message.get_body(preferencelist=("plain",))
    get_logger(__name__).info(
        "email (console backend)",
        to=message["To"],
        subject=message["Subject"],
        message_id=message["Message-ID"],
        text=body.get_content() if body is not None else "",
    )


def message_file_name(message: EmailMessage) -> str:
    safe_id = re.sub(r"[^A-Za-z0-9.@_-]", "", str(message["Message-ID"]))
    return f"{safe_id}.eml"


def write_message_file(directory: Path, message: EmailMessage) -> Path:
    """Write atomically (temporary file, then rename), so a reader never sees half a message."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / message_file_name(message)
    partial = path.with_suffix(".eml.part")
    partial.write_bytes(message.as_bytes())
    partial.replace(path)
    return path


def send_over_smtp(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        smtp.send_message(message)
