"""The pages through httpx, on both engines: logins and redirects, CSRF, forms and their errors, the pages
each role may see, the demo shop's switch. The browser tests (test_browser.py) cover the same in Chromium."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.audit.models import AuditEntry
from partners.commissions import service as commissions
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.identity.roles import Role
from partners.settings import Settings
from partners.tracking.models import TrackingLink
from partners.web import demo_shop
from tests.commissions.support import make_customer, make_purchase
from tests.web.support import PASSWORD, csrf_of, log_in_partner, log_in_staff, make_shop

PORTAL_PAGES = {
    "/portal": "Clicks, conversions and earnings",
    "/portal/links": "Make a link",
    "/portal/commissions": "Export CSV",
    "/portal/team": "Recruit partners",
    "/portal/payouts": "Request a payout",
    "/portal/disputes": "Open a dispute",
    "/portal/profile": "Your account",
}
CONSOLE_PAGES = {
    "/console": "Programme overview",
    "/console/applications": "Applications",
    "/console/partners": "Partners",
    "/console/commissions": "Commissions",
    "/console/payouts": "Build a batch",
    "/console/disputes": "Disputes",
    "/console/programs": "Tiers",
    "/console/staff": "Add a staff member",
    "/console/api-keys": "Create a key",
    "/console/audit": "Audit log",
    "/console/settings": "PAYOUT_MINIMUM_AMOUNT",
}


async def test_a_portal_page_without_a_login_redirects_to_the_login_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/portal/links")
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login?next=/portal/links"
    htmx = await client.get("/console/partners", headers={"HX-Request": "true"})
    assert htmx.headers["hx-redirect"] == "/console/login?next=/console/partners"


async def test_every_portal_page_renders_for_a_logged_in_partner(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    landing = await log_in_partner(client)
    assert "Hello, Asha" in landing.text
    for path, marker in PORTAL_PAGES.items():
        page = await client.get(path)
        assert page.status_code == 200, path
        assert marker in page.text, path
        assert 'hx-headers=\'{"X-CSRF-Token": "' in page.text


async def test_a_wrong_password_shows_a_clear_message(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    form = await client.get("/portal/login")
    response = await client.post(
        "/portal/login", data={"email": "asha@example.com", "password": "nope", "csrf_token": csrf_of(form)}
    )
    assert response.status_code == 401
    assert "Invalid email or password." in response.text
    assert 'role="alert"' in response.text


async def test_public_forms_refuse_a_post_without_the_form_token(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    response = await client.post("/portal/login", data={"email": "asha@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert "partners_partner_session" not in response.headers.get("set-cookie", "")


async def test_a_logged_in_form_needs_the_session_csrf_token(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    page = await log_in_partner(client)
    body = {"destination_url": "https://namaskah.app/pricing", "utm_source": "yt", "slug": "asha-yt"}
    refused = await client.post("/portal/links", data=body)
    assert refused.status_code == 403
    made = await client.post("/portal/links", data={**body, "csrf_token": csrf_of(page)})
    assert made.status_code == 303
    created = await client.get(made.headers["location"])
    assert "http://127.0.0.1:8000/r/asha-yt" in created.text
    assert "<svg" in created.text  # the QR code, inline
    async with database.read() as session:
        codes = list(await session.scalars(sa.select(TrackingLink.code)))
    assert codes == ["asha-yt"]


async def test_a_link_to_a_host_the_program_does_not_allow_is_refused_with_the_reason(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    page = await log_in_partner(client)
    response = await client.post(
        "/portal/links", data={"destination_url": "https://evil.example/", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 422
    assert "evil.example is not a destination this program allows" in response.text
    assert 'aria-invalid="true"' in response.text


async def test_applying_shows_field_errors_then_creates_a_pending_partner(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    form = await client.get("/portal/apply?ref=abc")
    assert 'value="abc"' in form.text
    token = csrf_of(form)
    body = {"name": "Ravi", "email": "not-an-email", "password": PASSWORD, "country": "IN", "csrf_token": token}
    refused = await client.post("/portal/apply", data=body)
    assert refused.status_code == 422
    assert "email" in refused.text and 'aria-invalid="true"' in refused.text
    accepted = await client.post("/portal/apply", data={**body, "email": "ravi@example.com"})
    assert accepted.status_code == 200
    assert "Thanks, Ravi!" in accepted.text
    async with database.read() as session:
        ravi = await session.scalar(sa.select(Partner).where(Partner.email == "ravi@example.com"))
    assert ravi is not None and ravi.status == "pending"


async def test_the_commissions_export_is_a_csv_with_a_header(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    await log_in_partner(client)
    response = await client.get("/portal/commissions.csv?status=approved")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["commission_id", "created_at", "purchase_id"]


async def test_the_commissions_export_keeps_the_utc_days_asked(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    shop = await make_shop(database, settings)
    created = [
        datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC),  # the day before `from`
        datetime(2026, 3, 2, 0, 0, tzinfo=UTC),  # the first instant of `from`
        datetime(2026, 3, 3, 23, 59, 59, tzinfo=UTC),  # the last second of `to`
        datetime(2026, 3, 4, 0, 0, tzinfo=UTC),  # the day after `to`
    ]
    async with database.write() as session:
        customer = await make_customer(session, shop.program, shop.partner)
        made = []
        for at in created:
            purchase = await make_purchase(session, customer, 10_000, occurred_at=at)
            [commission] = await commissions.create_commissions_for_purchase(
                session, purchase=purchase, customer=customer, now=at
            )
            made.append(commission.id)
        for commission_id, at in zip(made, created, strict=True):  # the row's own creation time, not the test's
            await session.execute(sa.update(Commission).where(Commission.id == commission_id).values(created_at=at))
    await log_in_partner(client)
    response = await client.get("/portal/commissions.csv?from=2026-03-02&to=2026-03-03")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(int(row["commission_id"]) for row in rows) == made[1:3]


async def test_an_owner_sees_every_console_page(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    overview = await log_in_staff(database, client, Role.OWNER)
    assert "Programme overview" in overview.text
    for path, marker in CONSOLE_PAGES.items():
        page = await client.get(path, follow_redirects=True)
        assert page.status_code == 200, path
        assert marker in page.text, path


async def test_a_viewer_may_not_open_staff_management(client: httpx.AsyncClient, database: Database) -> None:
    page = await log_in_staff(database, client, Role.VIEWER)
    assert 'href="/console/staff"' not in page.text
    refused = await client.get("/console/staff")
    assert refused.status_code == 403
    assert "does not allow this" in refused.text


async def test_a_staff_note_is_kept_with_who_wrote_it(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    shop = await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.SUPPORT)
    response = await client.post(
        f"/console/partners/{shop.partner.id}/notes", data={"note": "Called her", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 303
    detail = await client.get(f"/console/partners/{shop.partner.id}")
    assert "Called her" in detail.text and "support person" in detail.text
    async with database.read() as session:
        entry = await session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "partner.note"))
    assert entry is not None and entry.actor_kind == "staff"


async def test_suspending_needs_a_reason(client: httpx.AsyncClient, database: Database, settings: Settings) -> None:
    shop = await make_shop(database, settings)
    page = await log_in_staff(database, client, Role.ADMIN)
    path = f"/console/partners/{shop.partner.id}/status/suspend"
    refused = await client.post(path, data={"reason": "", "csrf_token": csrf_of(page)})
    assert refused.status_code == 422
    assert "a reason is required to suspend a partner" in refused.text
    done = await client.post(path, data={"reason": "spam", "csrf_token": csrf_of(page)})
    assert done.status_code == 303
    async with database.read() as session:
        partner = await session.get_one(Partner, shop.partner.id)
    assert partner.status == "suspended" and partner.status_reason == "spam"


async def test_static_files_and_vendored_libraries_are_served(client: httpx.AsyncClient) -> None:
    for path in (
        "/static/app.css",
        "/static/app.js",
        "/static/vendor/htmx-2.0.11.min.js",
        "/static/vendor/chart-4.6.1.umd.min.js",
    ):
        assert (await client.get(path)).status_code == 200, path


async def test_the_demo_shop_is_off_outside_development(client: httpx.AsyncClient) -> None:
    assert (await client.get("/demo-shop")).status_code == 404  # the test settings say PARTNERS_ENV=test


@pytest.mark.parametrize(
    ("environment", "flag", "on"),
    [("development", False, True), ("test", False, False), ("test", True, True), ("production", True, False)],
)
def test_the_demo_shop_switch(environment: str, flag: bool, on: bool) -> None:
    settings = Settings(PARTNERS_ENV=environment, PARTNERS_DEMO_SHOP=flag)  # type: ignore[call-arg]
    assert demo_shop.enabled(settings) is on


async def test_htmx_gets_only_the_fragment_it_swaps(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    await log_in_partner(client)
    htmx = {"HX-Request": "true"}
    dashboard = await client.get("/portal?period=7d", headers=htmx)
    assert dashboard.status_code == 200
    assert dashboard.text.lstrip().startswith('<div id="dashboard">')
    assert "<html" not in dashboard.text
    fields = await client.get("/portal/payouts/method-fields?method=sepa", headers=htmx)
    assert 'id="method-fields"' in fields.text
    assert [name for name in ("detail_iban", "detail_bic", "detail_holder") if f'name="{name}"' in fields.text] == [
        "detail_iban",
        "detail_bic",
        "detail_holder",
    ]
    assert "<html" not in fields.text


async def test_a_partner_opens_a_missing_sale_dispute_and_adds_evidence(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    page = await log_in_partner(client)
    token = csrf_of(page)
    opened = await client.post(
        "/portal/disputes",
        data={
            "kind": "missing_conversion",
            "order_reference": "ORD-1",
            "order_date": "2026-01-05",
            "message": "My customer bought but nothing showed up.",
            "csrf_token": token,
        },
    )
    assert opened.status_code == 303, opened.text
    detail_url = opened.headers["location"].split("?")[0]
    uploaded = await client.post(
        f"{detail_url}/evidence",
        data={"csrf_token": token},
        files={"files": ("receipt.txt", b"order ORD-1 paid", "text/plain")},
    )
    assert uploaded.status_code == 303, uploaded.text
    detail = await client.get(detail_url)
    assert "My customer bought but nothing showed up." in detail.text
    assert "receipt.txt" in detail.text
    refused = await client.post(
        f"{detail_url}/evidence",
        data={"csrf_token": token},
        files={"files": ("virus.exe", b"MZ\x00\x01", "application/octet-stream")},
    )
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text


async def test_a_partner_switches_a_link_off_and_on_from_the_links_page(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    page = await log_in_partner(client)
    body = {"destination_url": "https://namaskah.app/pricing", "slug": "asha-off", "csrf_token": csrf_of(page)}
    assert (await client.post("/portal/links", data=body)).status_code == 303
    async with database.read() as session:
        link_id = await session.scalar(sa.select(TrackingLink.id).where(TrackingLink.code == "asha-off"))
    assert (await client.get("/r/asha-off")).status_code == 302

    refused = await client.post(f"/portal/links/{link_id}/active", data={"active": "false"})
    assert refused.status_code == 403  # no CSRF token
    off = await client.post(f"/portal/links/{link_id}/active", data={"active": "false", "csrf_token": csrf_of(page)})
    assert off.status_code == 303
    listed = await client.get(off.headers["location"])
    assert "Link switched off" in listed.text and "Switch on link asha-off" in listed.text
    assert (await client.get("/r/asha-off")).status_code == 404

    on = await client.post(f"/portal/links/{link_id}/active", data={"active": "true", "csrf_token": csrf_of(page)})
    assert "Link switched on again" in (await client.get(on.headers["location"])).text
    assert (await client.get("/r/asha-off")).status_code == 302
    elsewhere = await client.post("/portal/links/999999/active", data={"active": "false", "csrf_token": csrf_of(page)})
    assert elsewhere.status_code == 404


async def test_the_reset_page_says_when_too_many_links_were_asked_for(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await make_shop(database, settings)
    page = await client.get("/portal/reset-password")
    body = {"email": "asha@example.com", "csrf_token": csrf_of(page)}
    for _ in range(settings.login_rate_limit):
        sent = await client.post("/portal/reset-password/request", data=body)
        assert sent.status_code == 200 and "Check your inbox" in sent.text
    limited = await client.post("/portal/reset-password/request", data=body)
    assert limited.status_code == 429
    assert "Too many password-reset requests" in limited.text and "Send the link" in limited.text
