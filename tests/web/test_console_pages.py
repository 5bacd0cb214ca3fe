"""Console pages through httpx, on both engines: two-factor enrolment, programmes and tiers, rate overrides,
coupons."""

from __future__ import annotations

import json
import re

import httpx
import pyotp
import pytest
import sqlalchemy as sa

from partners.app import create_app
from partners.audit.models import AuditEntry
from partners.db.session import Database
from partners.identity import service as identity
from partners.identity import totp
from partners.identity.models import StaffUser
from partners.identity.roles import Role
from partners.programs import service as programs
from partners.programs.models import Program, Tier
from partners.settings import Settings
from partners.tracking import service as tracking
from tests.web.support import PASSWORD, csrf_of, log_in_partner, log_in_staff, make_shop

SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
NOW = 1_800_000_000.0  # a TOTP step boundary


@pytest.fixture
def fixed_totp_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    clock = [NOW]
    monkeypatch.setattr(totp, "current_time", lambda: clock[0])
    return clock


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


async def _start_enrolment(client: httpx.AsyncClient, token: str) -> tuple[httpx.Response, str]:
    started = await client.post("/console/security/setup", data={"csrf_token": token})
    assert started.status_code == 303
    page = await client.get(started.headers["location"])
    found = SECRET.search(page.text)
    assert found, page.text
    return page, found.group(1)


async def test_a_staff_member_turns_two_factor_on_with_a_code_and_off_again(
    client: httpx.AsyncClient, database: Database, fixed_totp_clock: list[float]
) -> None:
    overview = await log_in_staff(database, client, Role.VIEWER)
    token = csrf_of(overview)
    page = await client.get("/console/security")
    assert "Two-factor authentication is off" in page.text
    page, secret = await _start_enrolment(client, token)
    assert "<svg" in page.text and "otpauth://totp/" in page.text
    assert (await client.get("/console/security")).text.count(secret) >= 1  # a reload shows the same key

    wrong = await client.post("/console/security/confirm", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 422
    assert 'id="e-code"' in wrong.text and "invalid one-time code" in wrong.text
    assert secret in wrong.text  # the QR code and key are still there to try again

    confirmed = await client.post("/console/security/confirm", data={"code": code_at(secret, NOW), "csrf_token": token})
    assert confirmed.status_code == 303
    assert "Two-factor authentication is on" in (await client.get(confirmed.headers["location"])).text
    async with database.read() as session:
        user = await session.scalar(sa.select(StaffUser).where(StaffUser.email == "viewer@example.com"))
    assert user is not None and user.totp_enabled

    reused = await client.post("/console/security/disable", data={"code": code_at(secret, NOW), "csrf_token": token})
    assert reused.status_code == 422  # a code is never accepted twice
    fixed_totp_clock[0] += 30
    disabled = await client.post(
        "/console/security/disable", data={"code": code_at(secret, NOW + 30), "csrf_token": token}
    )
    assert disabled.status_code == 303
    assert "Two-factor authentication is off" in (await client.get(disabled.headers["location"])).text


async def test_the_overview_before_any_programme_shows_the_default_currency_and_writes_nothing(
    client: httpx.AsyncClient, database: Database
) -> None:
    """A page is a read: the overview of an empty platform does not create the default programme (on PostgreSQL a
    read unit of work cannot write at all)."""
    overview = await log_in_staff(database, client, Role.VIEWER)
    assert overview.status_code == 200
    assert f"({programs.DEFAULT_PROGRAM_CURRENCY})" in overview.text  # the chart's series labels
    async with database.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Program)) == 0


async def test_enrolment_forms_need_the_session_csrf_token(client: httpx.AsyncClient, database: Database) -> None:
    await log_in_staff(database, client, Role.SUPPORT)
    refused = await client.post("/console/security/setup")
    assert refused.status_code == 403


async def test_where_2fa_is_required_a_new_staff_member_is_sent_to_enrol_first(
    settings: Settings, database: Database, fixed_totp_clock: list[float]
) -> None:
    strict = settings.model_copy(update={"require_staff_2fa": True})
    transport = httpx.ASGITransport(app=create_app(strict, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        async with database.write() as session:
            await identity.create_staff_user(
                session, email="owner@example.com", name="Owner", password=PASSWORD, role=Role.OWNER
            )
        form = await client.get("/console/login")
        login = await client.post(
            "/console/login",
            data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": csrf_of(form)},
        )
        assert login.status_code == 303
        blocked = await client.get("/console/partners")
        assert blocked.status_code == 303
        assert blocked.headers["location"] == "/console/security?next=/console/partners"
        page = await client.get("/console/security")
        assert "requires two-factor authentication" in page.text
        _page, secret = await _start_enrolment(client, csrf_of(page))
        confirmed = await client.post(
            "/console/security/confirm", data={"code": code_at(secret, NOW), "csrf_token": csrf_of(page)}
        )
        assert confirmed.status_code == 303
        assert (await client.get("/console/partners")).status_code == 200


async def test_staff_create_a_programme_with_its_default_tiers_and_a_taken_slug_is_refused_next_to_the_field(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.OWNER)
    form = await client.get("/console/programs/new")
    assert form.status_code == 200 and 'name="slug"' in form.text
    body = {"name": "Resellers", "slug": "resellers", "currency": "eur", "with_default_tiers": "on"}
    created = await client.post("/console/programs", data={**body, "csrf_token": csrf_of(page)})
    assert created.status_code == 303, created.text
    async with database.read() as session:
        program = await session.scalar(sa.select(Program).where(Program.slug == "resellers"))
        assert program is not None and program.currency == "EUR"
        tiers = list(await session.scalars(sa.select(Tier).where(Tier.program_id == program.id)))
    assert tiers
    again = await client.post("/console/programs", data={**body, "csrf_token": csrf_of(page)})
    assert again.status_code == 409
    assert 'id="e-slug"' in again.text and "already exists" in again.text
    bad = await client.post("/console/programs", data={**body, "slug": "No Spaces", "csrf_token": csrf_of(page)})
    assert bad.status_code == 422 and 'id="e-slug"' in bad.text


def _tier_form(tier: Tier, **changes: str) -> dict[str, str]:
    form = {
        "name": tier.name,
        "base_rate_bps": str(tier.base_rate_bps),
        "ceiling_rate_bps": str(tier.ceiling_rate_bps),
        "level2_rate_bps": str(tier.level2_rate_bps),
        "level3_rate_bps": str(tier.level3_rate_bps),
        "hold_days": str(tier.hold_days),
        "can_recruit": "on",
        "bonus_steps": json.dumps(tier.bonus_steps),
        "promotion_rule": json.dumps(tier.promotion_rule),
    }
    return {**form, **changes}


async def test_staff_add_a_tier_and_edit_its_bonus_steps_and_promotion_rule(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    shop = await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.OWNER)
    token = csrf_of(page)
    added = await client.post(
        f"/console/programs/{shop.program.id}/tiers",
        data={
            "key": "elite",
            "rank": "9",
            "name": "Elite",
            "base_rate_bps": "3000",
            "ceiling_rate_bps": "4000",
            "bonus_steps": '[{"threshold": 500000, "rate_bps": 3500}]',
            "promotion_rule": '{"window_days": 90, "min_revenue": 1000000}',
            "can_recruit": "on",
            "csrf_token": token,
        },
    )
    assert added.status_code == 303, added.text
    async with database.read() as session:
        elite = await session.scalar(sa.select(Tier).where(Tier.key == "elite"))
    assert elite is not None and elite.bonus_steps == [{"threshold": 500000, "rate_bps": 3500}]
    assert elite.promotion_rule == {"window_days": 90, "min_revenue": 1000000}

    path = f"/console/tiers/{elite.id}"
    steps = '[{"threshold": 100000, "rate_bps": 3200}, {"threshold": 900000, "rate_bps": 3900}]'
    saved = await client.post(
        path, data={**_tier_form(elite, bonus_steps=steps, promotion_rule='{"min_referrals": 5}'), "csrf_token": token}
    )
    assert saved.status_code == 303, saved.text
    async with database.read() as session:
        edited = await session.get_one(Tier, elite.id)
    assert [step["rate_bps"] for step in edited.bonus_steps] == [3200, 3900]
    assert edited.promotion_rule == {"min_referrals": 5}

    broken = await client.post(path, data={**_tier_form(edited, bonus_steps="[{"), "csrf_token": token})
    assert broken.status_code == 422
    assert f'id="t{elite.id}-bonus_steps-error"' in broken.text and "not valid JSON" in broken.text
    above_ceiling = await client.post(
        path, data={**_tier_form(edited, bonus_steps='[{"threshold": 1, "rate_bps": 9000}]'), "csrf_token": token}
    )
    assert above_ceiling.status_code == 422
    assert f'id="t{elite.id}-bonus_steps-error"' in above_ceiling.text
    assert "between the base rate and the ceiling" in above_ceiling.text
    unknown_key = await client.post(
        path, data={**_tier_form(edited, promotion_rule='{"min_vibes": 3}'), "csrf_token": token}
    )
    assert unknown_key.status_code == 422 and f'id="t{elite.id}-promotion_rule-error"' in unknown_key.text
    async with database.read() as session:
        unchanged = await session.get_one(Tier, elite.id)
    assert unchanged.promotion_rule == {"min_referrals": 5}


async def test_staff_clear_a_partners_rate_override(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    shop = await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.OWNER)
    token = csrf_of(page)
    base = f"/console/partners/{shop.partner.id}"
    nothing = await client.post(f"{base}/override/clear", data={"reason": "", "csrf_token": token})
    assert nothing.status_code == 404 and "has no rate override" in nothing.text
    saved = await client.post(f"{base}/override", data={"base_rate_bps": "2500", "reason": "deal", "csrf_token": token})
    assert saved.status_code == 303
    assert "Remove override" in (await client.get(base)).text
    cleared = await client.post(f"{base}/override/clear", data={"reason": "deal ended", "csrf_token": token})
    assert cleared.status_code == 303
    async with database.read() as session:
        assert await programs.get_override(session, shop.partner.id) is None
        entry = await session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "partner.rate_override_cleared"))
    assert entry is not None and entry.details["reason"] == "deal ended"


async def test_staff_create_coupons_for_a_partner_who_then_sees_them_on_the_links_page(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    shop = await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.OWNER)
    token = csrf_of(page)
    path = f"/console/partners/{shop.partner.id}/coupons"
    created = await client.post(path, data={"code": "asha10", "csrf_token": token})
    assert created.status_code == 303
    detail = await client.get(f"/console/partners/{shop.partner.id}")
    assert "<code>ASHA10</code>" in detail.text
    taken = await client.post(path, data={"code": "ASHA10", "csrf_token": token})
    assert taken.status_code == 409 and 'id="e-code"' in taken.text and "is taken" in taken.text
    malformed = await client.post(path, data={"code": "a b", "csrf_token": token})
    assert malformed.status_code == 422 and 'id="e-code"' in malformed.text
    async with database.read() as session:
        codes = [coupon.code for coupon in await tracking.list_coupons(session, shop.partner.id)]
    assert codes == ["ASHA10"]

    client.cookies.clear()
    await log_in_partner(client)
    links = await client.get("/portal/links")
    assert "Your coupon codes" in links.text and "<code>ASHA10</code>" in links.text


async def test_crypto_payouts_are_switched_in_the_console_and_the_admin_api(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    shop = await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.OWNER)
    token = csrf_of(page)
    api = await client.get(f"/admin/programs/{shop.program.id}")
    assert api.json()["allow_crypto_payouts"] is False
    editor = await client.get(f"/console/programs/{shop.program.id}")
    assert 'name="allow_crypto_payouts"' in editor.text
    program = shop.program
    form = {
        "name": program.name,
        "cookie_window_days": str(program.cookie_window_days),
        "attribution_model": program.attribution_model,
        "allowed_destination_hosts": ", ".join(program.allowed_destination_hosts),
        "payout_schedule": program.payout_schedule,
        "payout_day": str(program.payout_day),
        "welcome_reward_kind": program.welcome_reward_kind,
        "welcome_reward_value": str(program.welcome_reward_value),
        "active": "on",
        "allow_crypto_payouts": "on",
        "csrf_token": token,
    }
    saved = await client.post(f"/console/programs/{program.id}", data=form)
    assert saved.status_code == 303, saved.text
    assert (await client.get(f"/admin/programs/{program.id}")).json()["allow_crypto_payouts"] is True
    patched = await client.patch(
        f"/admin/programs/{program.id}", json={"allow_crypto_payouts": False}, headers={"X-CSRF-Token": token}
    )
    assert patched.status_code == 200 and patched.json()["allow_crypto_payouts"] is False
    bad = await client.post(f"/console/programs/{program.id}", data={**form, "payout_day": "40"})
    assert bad.status_code == 422 and "payout day" in bad.text
