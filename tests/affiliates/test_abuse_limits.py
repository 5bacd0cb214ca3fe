"""Requests that make the platform send email to an address the caller typed are rate limited: applications
per IP (each sends a verification email), password-reset requests per email and per IP. Same limit and window
as logins (PARTNERS_LOGIN_RATE_LIMIT / _WINDOW); the counters live in the database (every process sees them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.affiliates.conftest import application, field_of
from tests.mail.support import messages_to, run_jobs

Programme = tuple[Program, dict[str, Tier]]

RESET = "/affiliate/password-reset/request"


@pytest.fixture
async def from_ip(app: Any) -> AsyncIterator[Any]:
    """Clients at chosen IP addresses."""
    clients: list[httpx.AsyncClient] = []

    def make(ip: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://t")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_one_network_cannot_file_applications_without_end(
    from_ip: Any, settings: Settings, program: Programme
) -> None:
    office, elsewhere = from_ip("198.51.100.7"), from_ip("198.51.100.8")
    taken = await office.post("/affiliate/register", json=application(email="first@example.com"))
    assert taken.status_code == 201
    duplicate = await office.post("/affiliate/register", json=application(email="first@example.com"))
    assert duplicate.status_code == 409 and field_of(duplicate) == "email"  # a refused one sends nothing: not counted
    for number in range(2, settings.login_rate_limit + 1):
        made = await office.post("/affiliate/register", json=application(email=f"p{number}@example.com"))
        assert made.status_code == 201, made.text
    limited = await office.post("/affiliate/register", json=application(email="one-more@example.com"))
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= settings.login_rate_window_seconds
    assert "Too many applications" in limited.json()["detail"]
    other = await elsewhere.post("/affiliate/register", json=application(email="one-more@example.com"))
    assert other.status_code == 201  # another network is not held back, and the limited try created nothing


async def test_password_reset_requests_are_limited_per_email_and_per_ip(
    from_ip: Any, database: Any, settings: Settings, program: Programme
) -> None:
    first, second, third = from_ip("203.0.113.1"), from_ip("203.0.113.2"), from_ip("203.0.113.3")
    assert (await first.post("/affiliate/register", json=application(email="asha@example.com"))).status_code == 201
    limit = settings.login_rate_limit
    for _ in range(limit):
        assert (await first.post(RESET, json={"email": "Asha@example.com"})).status_code == 202
    per_email = await second.post(RESET, json={"email": "asha@example.com"})  # another IP, the same inbox
    assert per_email.status_code == 429
    for number in range(limit):
        assert (await third.post(RESET, json={"email": f"nobody{number}@example.com"})).status_code == 202
    per_ip = await third.post(RESET, json={"email": "someone-else@example.com"})  # unknown addresses count too
    assert per_ip.status_code == 429
    await run_jobs(database)
    resets = [m for m in messages_to(settings, "asha@example.com") if "reset" in str(m["Subject"]).lower()]
    assert len(resets) == limit  # the limited request sent nothing
