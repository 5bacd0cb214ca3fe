from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from partners.app import create_app
from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity.models import AuthSession, LoginAttempt, StaffUser
from partners.identity.roles import Role
from partners.settings import Settings
from tests.identity.conftest import PASSWORD, bearer, login, make_staff


def _client_from(app: Any, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_password_is_stored_as_an_argon2_hash(database: Database) -> None:
    await make_staff(database, "Ana@Example.com", Role.ADMIN)
    async with database.read() as session:
        user = (await session.scalars(sa.select(StaffUser))).one()
    assert user.email == "ana@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


async def test_login_returns_a_bearer_token_and_sets_an_httponly_cookie(
    database: Database, client: httpx.AsyncClient
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    response = await login(client, "ANA@example.com ")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["email"] == "ana@example.com"
    assert body["user"]["role"] == "admin"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"partners_staff_session={body['token'].lower()}")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # test environment over plain http

    client.cookies.clear()
    me = await client.get("/auth/me", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "ana@example.com"
    assert "ledger:read" in me.json()["permissions"]


async def test_session_cookie_is_secure_in_production(settings: Settings, database: Database) -> None:
    production = settings.model_copy(update={"environment": "production"})
    await make_staff(database, "ana@example.com", Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(production, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await login(client, "ana@example.com")
    assert response.status_code == 200
    assert "secure" in response.headers["set-cookie"].lower()


async def test_the_database_keeps_only_a_hash_of_the_session_token(
    database: Database, client: httpx.AsyncClient
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    token = (await login(client, "ana@example.com")).json()["token"]
    async with database.read() as session:
        stored = (await session.scalars(sa.select(AuthSession))).one()
    assert len(stored.token_hash) == 64
    assert token not in stored.token_hash
    assert stored.subject_kind == "staff"
    assert stored.ip == "127.0.0.1"


async def test_wrong_password_and_unknown_email_get_the_same_401(database: Database, client: httpx.AsyncClient) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    wrong_password = await login(client, "ana@example.com", "not the password at all")
    unknown_email = await login(client, "nobody@example.com", PASSWORD)
    malformed_email = await login(client, "not-an-email", PASSWORD)
    for response in (wrong_password, unknown_email, malformed_email):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "Invalid email or password."
    assert "set-cookie" not in wrong_password.headers


async def test_a_deactivated_user_cannot_log_in(database: Database, client: httpx.AsyncClient) -> None:
    user_id = await make_staff(database, "ana@example.com", Role.ADMIN)
    async with database.write() as session:
        await session.execute(sa.update(StaffUser).where(StaffUser.id == user_id).values(is_active=False))
    response = await login(client, "ana@example.com")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid email or password."


async def test_login_is_rate_limited_per_email_with_retry_after(
    settings: Settings, database: Database, client: httpx.AsyncClient, app: Any
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    for _ in range(settings.login_rate_limit):
        assert (await login(client, "ana@example.com", "wrong password!!")).status_code == 401

    limited = await login(client, "ana@example.com")  # even the right password
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 0 < int(limited.headers["retry-after"]) <= settings.login_rate_window_seconds

    other_ip = _client_from(app, "10.0.0.9")
    async with other_ip:
        assert (await login(other_ip, "ana@example.com")).status_code == 429


async def test_login_is_rate_limited_per_ip_across_emails(
    settings: Settings, database: Database, client: httpx.AsyncClient
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    for attempt in range(settings.login_rate_limit):
        assert (await login(client, f"guess{attempt}@example.com")).status_code == 401
    assert (await login(client, "ana@example.com")).status_code == 429


async def test_a_success_does_not_reset_another_ips_failures(settings: Settings, database: Database, app: Any) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    async with _client_from(app, "10.0.0.1") as attacker, _client_from(app, "10.0.0.2") as ana:
        for _ in range(settings.login_rate_limit - 1):
            assert (await login(attacker, "ana@example.com", "wrong password!!")).status_code == 401
        assert (await login(ana, "ana@example.com")).status_code == 200
        assert (await login(attacker, "ana@example.com", "wrong password!!")).status_code == 401
        assert (await login(attacker, "ana@example.com", "wrong password!!")).status_code == 429


async def test_a_success_clears_the_failures_of_its_own_email_and_ip(
    settings: Settings, database: Database, client: httpx.AsyncClient
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    for _ in range(settings.login_rate_limit - 1):
        assert (await login(client, "ana@example.com", "wrong password!!")).status_code == 401
    assert (await login(client, "ana@example.com")).status_code == 200
    for _ in range(settings.login_rate_limit - 1):
        assert (await login(client, "ana@example.com", "wrong password!!")).status_code == 401
    assert (await login(client, "ana@example.com")).status_code == 200


async def test_failures_older_than_the_window_no_longer_count(
    settings: Settings, database: Database, client: httpx.AsyncClient
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    long_ago = utcnow() - timedelta(seconds=settings.login_rate_window_seconds + 1)
    async with database.write() as session:
        for _ in range(settings.login_rate_limit):
            session.add(
                LoginAttempt(subject_kind="staff", email="ana@example.com", ip="127.0.0.1", created_at=long_ago)
            )
    assert (await login(client, "ana@example.com")).status_code == 200
