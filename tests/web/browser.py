"""Helpers for the Playwright tests: logins, emailed links, screenshots, the axe check, overflow."""

from __future__ import annotations

import email
import email.policy
import re
import time
from pathlib import Path
from typing import Any

from partners.demo import ADMIN_EMAIL, ADMIN_PASSWORD, PARTNER_PASSWORD
from tests.web.conftest import AXE, SCREENSHOTS

POLL_SECONDS = 30
SERIOUS = ("serious", "critical")


def log_in_partner(page: Any, email_address: str, password: str = PARTNER_PASSWORD) -> None:
    page.goto("/portal/login")
    page.get_by_label("Email").fill(email_address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/portal(\?.*)?$"))


def log_in_staff(page: Any, email_address: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto("/console/login")
    page.get_by_label("Email").fill(email_address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/console(\?.*)?$"))


def emailed_token(mail_dir: Path, to: str, path: str) -> str:
    """The token of the newest email to `to` linking to `path`, waiting (bounded) for the server's worker."""
    pattern = re.compile(rf"{re.escape(path)}\?token=([A-Za-z0-9_-]+)")
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        found = []
        for file in sorted(mail_dir.glob("*.eml"), key=lambda item: item.stat().st_mtime_ns):
            message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
            if message["To"] != to:
                continue
            body = message.get_body(preferencelist=("plain",))
            match = pattern.search(body.get_content() if body is not None else "")
            if match:
                found.append(match.group(1))
        if found:
            return found[-1]
        time.sleep(0.25)
    raise AssertionError(f"no email to {to} with a {path} link")


def reload_until(page: Any, text: str, locator: str = "main") -> None:
    """Reload until `text` shows (the server's job worker finishes in the background)."""
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        if text in page.locator(locator).inner_text():
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"{text!r} never appeared on {page.url}")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scroll)."""
    width: int = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return width


def serious_violations(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": item["id"],
            "impact": item["impact"],
            "help": item["help"],
            "nodes": [node["target"] for node in item["nodes"]][:5],
        }
        for item in results["violations"]
        if item["impact"] in SERIOUS
    ]
