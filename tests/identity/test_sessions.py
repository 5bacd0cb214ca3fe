from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity import service
from partners.identity.models import AuthSession, StaffUser
from partners.identity.roles import Role
from partners.settings import Settings
from tests.factories import create_partner, create_program
from tests.identity.conftest import bearer, login, make_staff


async def _cookie_login(client: httpx.AsyncClient, database: Database, role: Role = Role.ADMIN) -> str:
    """Log in keeping only the cookie; returns the CSRF token."""
    await make_staff(database, "ana@example.com", role)
    response = await login(client, "ana@example.com")
    assert response.status_code == 200
    assert client.cookies.get("partners_staff_session") == response.json()["token"]
    return str(response.json()["csrf_token"])


async def test_requests_without_credentials_get_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/auth/me", headers=bearer("made-up-token"))).status_code == 401


async def test_the_cookie_authenticates_safe_requests(client: httpx.AsyncClient, database: Database) -> None:
    csrf_token = await _cookie_login(client, database)
    me = await client.get("/auth/me")
    assert me.status_code == 200
    assert me.json()["session"]["csrf_token"] == csrf_token
    assert (await client.get("/_test/ledger")).status_code == 200


async def test_cookie_post_needs_the_csrf_token(client: httpx.AsyncClient, database: Database) -> None:
    csrf_token = await _cookie_login(client, database)
    missing = await client.post("/_test/partners")
    assert missing.status_code == 403
    assert "CSRF" in missing.json()["detail"]
    wrong = await client.post("/_test/partners", headers={"X-CSRF-Token": "not-the-token"})
    assert wrong.status_code == 403
    ok = await client.post("/_test/partners", headers={"X-CSRF-Token": csrf_token})
    assert ok.status_code == 200


async def test_the_csrf_token_may_come_as_a_form_field(client: httpx.AsyncClient, database: Database) -> None:
    csrf_token = await _cookie_login(client, database)
    assert (await client.post("/auth/logout", data={"csrf_token": "wrong"})).status_code == 403
    assert (await client.post("/auth/logout", data={"csrf_token": csrf_token})).status_code == 204
    assert (await client.get("/auth/me")).status_code == 401


async def test_bearer_post_needs_no_csrf_token(client: httpx.AsyncClient, database: Database) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    token = (await login(client, "ana@example.com")).json()["token"]
    client.cookies.clear()
    assert (await client.post("/_test/partners", headers=bearer(token))).status_code == 200


async def test_logout_revokes_the_session_and_clears_the_cookie(client: httpx.AsyncClient, database: Database) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    token = (await login(client, "ana@example.com")).json()["token"]
    client.cookies.clear()
    response = await client.post("/auth/logout", headers=bearer(token))
    assert response.status_code == 204
    assert 'partners_staff_session=""' in response.headers["set-cookie"]
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
    async with database.read() as session:
        stored = (await session.scalars(sa.select(AuthSession))).one()
    assert stored.revoked_at is not None


async def test_an_expired_session_is_rejected(client: httpx.AsyncClient, database: Database) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    token = (await login(client, "ana@example.com")).json()["token"]
    client.cookies.clear()
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    async with database.write() as session:
        await session.execute(sa.update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await client.get("/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_a_get_request_records_last_seen(client: httpx.AsyncClient, database: Database) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    token = (await login(client, "ana@example.com")).json()["token"]
    client.cookies.clear()
    an_hour_ago = utcnow() - timedelta(hours=1)
    async with database.write() as session:
        await session.execute(sa.update(AuthSession).values(last_seen_at=an_hour_ago))
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    async with database.read() as session:
        stored = (await session.scalars(sa.select(AuthSession))).one()
    assert stored.last_seen_at > an_hour_ago + timedelta(minutes=59)


async def test_a_deactivated_users_session_stops_working(client: httpx.AsyncClient, database: Database) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    token = (await login(client, "ana@example.com")).json()["token"]
    client.cookies.clear()
    async with database.write() as session:
        user = await service.find_staff_by_email(session, "ana@example.com")
        assert user is not None
        user.is_active = False
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_partner_sessions_share_the_machinery_but_not_the_door(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        token, csrf_token = await service.start_session(
            session, settings, subject_kind="partner", subject_id=partner.id, ip="10.1.1.1", user_agent="pytest"
        )
    async with database.read() as session:
        as_partner = await service.resolve_session(session, settings, token, subject_kind="partner", subject=Partner)
        as_staff = await service.resolve_session(session, settings, token, subject_kind="staff", subject=StaffUser)
    assert as_partner is not None
    auth_session, subject = as_partner
    assert auth_session.subject_id == partner.id and auth_session.csrf_token == csrf_token
    assert subject.id == partner.id and subject.email == partner.email
    assert as_staff is None
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_a_session_whose_subject_is_gone_opens_nothing(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        token, _ = await service.start_session(
            session, settings, subject_kind="partner", subject_id=424242, ip="10.1.1.1", user_agent="pytest"
        )
    async with database.read() as session:
        assert await service.resolve_session(session, settings, token, subject_kind="partner", subject=Partner) is None
    answer = await client.get("/affiliate/me", headers=bearer(token))
    assert answer.status_code == 401
    assert "invalid" in answer.json()["detail"]
