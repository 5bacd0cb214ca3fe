from __future__ import annotations

import httpx
import pyotp
import pytest
import sqlalchemy as sa

from partners.app import create_app
from partners.db.session import Database
from partners.identity.models import StaffUser
from partners.identity.roles import Role
from partners.kit.crypto import decrypt_text
from partners.settings import Settings
from tests.identity.conftest import FakeClock, bearer, login, login_bearer, make_staff


async def _enrol(client: httpx.AsyncClient, headers: dict[str, str], clock: FakeClock) -> pyotp.TOTP:
    setup = await client.post("/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    generator = pyotp.TOTP(setup.json()["secret"])
    confirm = await client.post("/auth/2fa/confirm", headers=headers, json={"code": generator.at(clock.now)})
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["totp_enabled"] is True
    return generator


def _wrong_code(generator: pyotp.TOTP, now: float) -> str:
    """A six-digit code that no step in the accepted window produces."""
    valid = {generator.at(now + offset) for offset in (-30, 0, 30)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


async def test_setup_stores_the_secret_encrypted_and_does_not_enable_yet(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    headers = await login_bearer(client, "ana@example.com")
    setup = await client.post("/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={secret}" in setup.json()["otpauth_uri"]
    async with database.read() as session:
        user = (await session.scalars(sa.select(StaffUser))).one()
    assert user.totp_enabled is False
    assert user.totp_secret_encrypted is not None
    assert secret not in user.totp_secret_encrypted
    assert decrypt_text(settings, user.totp_secret_encrypted) == secret
    assert (await login(client, "ana@example.com")).status_code == 200


async def test_confirm_rejects_a_wrong_code(client: httpx.AsyncClient, database: Database, clock: FakeClock) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    headers = await login_bearer(client, "ana@example.com")
    secret = (await client.post("/auth/2fa/setup", headers=headers)).json()["secret"]
    stale = pyotp.TOTP(secret).at(clock.now - 120)
    response = await client.post("/auth/2fa/confirm", headers=headers, json={"code": stale})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "code"
    assert (await client.get("/auth/me", headers=headers)).json()["user"]["totp_enabled"] is False


async def test_login_requires_a_valid_code_once_enabled(
    client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    generator = await _enrol(client, await login_bearer(client, "ana@example.com"), clock)
    clock.advance(30)

    without_code = await login(client, "ana@example.com")
    assert without_code.status_code == 401
    assert without_code.json()["errors"][0]["field"] == "otp"
    wrong_code = await login(client, "ana@example.com", otp=_wrong_code(generator, clock.now))
    assert wrong_code.status_code == 401
    with_code = await login(client, "ana@example.com", otp=generator.at(clock.now))
    assert with_code.status_code == 200
    assert with_code.json()["two_factor_pending"] is False


async def test_a_code_is_accepted_only_once(client: httpx.AsyncClient, database: Database, clock: FakeClock) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    generator = await _enrol(client, await login_bearer(client, "ana@example.com"), clock)
    replayed = await login(client, "ana@example.com", otp=generator.at(clock.now))
    assert replayed.status_code == 401
    clock.advance(30)
    assert (await login(client, "ana@example.com", otp=generator.at(clock.now))).status_code == 200


async def test_wrong_codes_count_towards_the_login_rate_limit(
    client: httpx.AsyncClient, database: Database, clock: FakeClock, settings: Settings
) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    generator = await _enrol(client, await login_bearer(client, "ana@example.com"), clock)
    clock.advance(30)
    for _ in range(settings.login_rate_limit):
        response = await login(client, "ana@example.com", otp=_wrong_code(generator, clock.now))
        assert response.status_code == 401
    assert (await login(client, "ana@example.com", otp=generator.at(clock.now))).status_code == 429


async def test_disable_needs_a_code(client: httpx.AsyncClient, database: Database, clock: FakeClock) -> None:
    await make_staff(database, "ana@example.com", Role.ADMIN)
    headers = await login_bearer(client, "ana@example.com")
    generator = await _enrol(client, headers, clock)
    clock.advance(30)
    wrong = await client.post("/auth/2fa/disable", headers=headers, json={"code": _wrong_code(generator, clock.now)})
    assert wrong.status_code == 422
    disabled = await client.post("/auth/2fa/disable", headers=headers, json={"code": generator.at(clock.now)})
    assert disabled.status_code == 200
    assert disabled.json()["totp_enabled"] is False
    assert (await login(client, "ana@example.com")).status_code == 200


@pytest.fixture
async def strict_client(settings: Settings, database: Database) -> httpx.AsyncClient:
    strict = settings.model_copy(update={"require_staff_2fa": True})
    transport = httpx.ASGITransport(app=create_app(strict, database))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_required_2fa_confines_a_non_enrolled_session(
    strict_client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    await make_staff(database, "owner@example.com", Role.OWNER)
    async with strict_client as client:
        response = await login(client, "owner@example.com")
        assert response.status_code == 200
        assert response.json()["two_factor_pending"] is True
        headers = bearer(response.json()["token"])
        client.cookies.clear()

        blocked = await client.get("/admin/staff", headers=headers)
        assert blocked.status_code == 403
        assert "Two-factor authentication is required" in blocked.json()["detail"]
        me = await client.get("/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["two_factor_required"] is True

        generator = await _enrol(client, headers, clock)
        assert (await client.get("/admin/staff", headers=headers)).status_code == 200
        clock.advance(30)
        refused = await client.post("/auth/2fa/disable", headers=headers, json={"code": generator.at(clock.now)})
        assert refused.status_code == 403
        assert (await client.post("/auth/logout", headers=headers)).status_code == 204


async def test_required_2fa_still_confines_an_older_session_after_enrolment_elsewhere(
    strict_client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    await make_staff(database, "owner@example.com", Role.OWNER)
    async with strict_client as client:
        first = bearer((await login(client, "owner@example.com")).json()["token"])
        second = bearer((await login(client, "owner@example.com")).json()["token"])
        client.cookies.clear()
        await _enrol(client, second, clock)
        assert (await client.get("/admin/staff", headers=second)).status_code == 200
        assert (await client.get("/admin/staff", headers=first)).status_code == 403
