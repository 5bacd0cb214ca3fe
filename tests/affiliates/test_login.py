from __future__ import annotations

import httpx
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.db.session import Database
from partners.identity.models import LoginAttempt
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.affiliates.conftest import (
    PASSWORD,
    emailed_token,
    field_of,
    login_partner,
    partner_bearer,
    register,
)
from tests.mail.support import messages_to, run_jobs

Programme = tuple[Program, dict[str, Tier]]
NEW_PASSWORD = "a brand new passphrase"


async def test_login_me_and_logout(client: httpx.AsyncClient, program: Programme) -> None:
    partner = await register(client)
    response = await login_partner(client, "ASHA@example.com")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["partner"]["id"] == partner["id"]
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"partners_partner_session={body['token'].lower()}")
    assert "httponly" in cookie and "samesite=lax" in cookie

    client.cookies.clear()
    headers = {"Authorization": f"Bearer {body['token']}"}
    me = await client.get("/affiliate/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["partner"]["email"] == "asha@example.com"
    assert me.json()["partner"]["status"] == "pending"  # a pending applicant may look at their status
    assert me.json()["can_earn"] is False

    logout = await client.post("/affiliate/logout", headers=headers)
    assert logout.status_code == 204
    assert (await client.get("/affiliate/me", headers=headers)).status_code == 401


async def test_cookie_session_works_and_needs_csrf_for_logout(client: httpx.AsyncClient, program: Programme) -> None:
    await register(client)
    body = (await login_partner(client, "asha@example.com")).json()
    assert (await client.get("/affiliate/me")).status_code == 200  # the cookie alone
    assert (await client.post("/affiliate/logout")).status_code == 403  # no CSRF token
    logout = await client.post("/affiliate/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert logout.status_code == 204


async def test_staff_tokens_are_not_partner_sessions(
    client: httpx.AsyncClient, admin_headers: dict[str, str], program: Programme
) -> None:
    assert (await client.get("/affiliate/me", headers=admin_headers)).status_code == 401


async def test_wrong_password_and_unknown_email_are_the_same_401(client: httpx.AsyncClient, program: Programme) -> None:
    await register(client)
    wrong = await login_partner(client, "asha@example.com", "wrong password here")
    unknown = await login_partner(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_login_is_rate_limited(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    await register(client)
    for _ in range(settings.login_rate_limit):
        assert (await login_partner(client, "asha@example.com", "wrong password here")).status_code == 401
    limited = await login_partner(client, "asha@example.com")  # even the right password
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= settings.login_rate_window_seconds
    async with database.read() as session:
        kinds = set(await session.scalars(sa.select(LoginAttempt.subject_kind)))
    assert kinds == {"partner", "registration"}  # the failed logins, and the application that created her


async def test_a_banned_partner_cannot_log_in(
    client: httpx.AsyncClient, admin_headers: dict[str, str], program: Programme
) -> None:
    partner = await register(client)
    await client.post(f"/admin/partners/{partner['id']}/ban", json={"reason": "spam"}, headers=admin_headers)
    assert (await login_partner(client, "asha@example.com")).status_code == 403


async def test_password_reset(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    await register(client)
    old_session = await partner_bearer(client, "asha@example.com")
    requested = await client.post("/affiliate/password-reset/request", json={"email": "Asha@example.com"})
    assert requested.status_code == 202
    token = await emailed_token(database, settings, "asha@example.com", "/portal/reset-password")

    weak = await client.post("/affiliate/password-reset/confirm", json={"token": token, "password": "short"})
    assert weak.status_code == 422 and field_of(weak) == "password"
    confirmed = await client.post("/affiliate/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert confirmed.status_code == 204

    assert (await client.get("/affiliate/me", headers=old_session)).status_code == 401
    assert (await login_partner(client, "asha@example.com", PASSWORD)).status_code == 401
    assert (await login_partner(client, "asha@example.com", NEW_PASSWORD)).status_code == 200
    again = await client.post("/affiliate/password-reset/confirm", json={"token": token, "password": PASSWORD})
    assert again.status_code == 422 and field_of(again) == "token"
    async with database.read() as session:
        partner = (await session.scalars(sa.select(Partner))).one()
    assert partner.email_verified_at is not None  # following the emailed link proved the address


async def test_a_newer_reset_link_replaces_the_older_one(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    await register(client)
    await client.post("/affiliate/password-reset/request", json={"email": "asha@example.com"})
    first = await emailed_token(database, settings, "asha@example.com", "/portal/reset-password")
    await client.post("/affiliate/password-reset/request", json={"email": "asha@example.com"})
    second = await emailed_token(database, settings, "asha@example.com", "/portal/reset-password")
    assert first != second
    stale = await client.post("/affiliate/password-reset/confirm", json={"token": first, "password": NEW_PASSWORD})
    assert stale.status_code == 422
    fresh = await client.post("/affiliate/password-reset/confirm", json={"token": second, "password": NEW_PASSWORD})
    assert fresh.status_code == 204


async def test_a_reset_for_an_unknown_email_says_the_same_and_sends_nothing(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    response = await client.post("/affiliate/password-reset/request", json={"email": "nobody@example.com"})
    assert response.status_code == 202
    assert await run_jobs(database) == 0
    assert messages_to(settings, "nobody@example.com") == []
