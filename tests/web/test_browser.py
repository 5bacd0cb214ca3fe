"""The pages in a real Chromium against a real server: the whole story, each page's main action, failed
forms, a phone's viewport, accessibility (axe), and screenshots into docs/screenshots/."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import pyotp
from playwright.sync_api import expect

from partners.demo import MARKER_EMAIL, PARTNER_PASSWORD
from tests.web.browser import (
    emailed_token,
    horizontal_overflow,
    log_in_partner,
    log_in_staff,
    reload_until,
    screenshot,
    serious_violations,
)
from tests.web.conftest import PHONE, LiveServer

PASSWORD = "a long story password"


def test_the_whole_story_from_application_to_a_paid_payout(page: Any, new_page: Any, live_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    email_address = f"story-{suffix}@example.com"
    name = f"Story Teller {suffix}"

    # A would-be partner applies and confirms the email.
    page.goto("/portal/apply")
    page.get_by_label("Full name or company").fill(name)
    page.get_by_label("Email").fill(email_address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Country").select_option("IN")
    page.get_by_label("Website or channel").fill("https://story.example.com")
    page.get_by_label("I have read and accept the partner agreement.").check()
    page.get_by_role("button", name="Send my application").click()
    expect(page.get_by_role("heading", name=f"Thanks, {name}!")).to_be_visible()
    token = emailed_token(live_server.mail_dir, email_address, "/portal/verify-email")
    page.goto(f"/portal/verify-email?token={token}")
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()

    # The admin approves the application.
    admin = new_page()
    log_in_staff(admin)
    admin.get_by_role("link", name="Applications").click()
    card = admin.locator("section.card", has=admin.get_by_role("heading", name=name))
    card.get_by_role("button", name="Approve").click()
    expect(admin.get_by_role("status")).to_contain_text("Application approved")

    # The partner logs in and makes a link to the demo shop.
    log_in_partner(page, email_address, PASSWORD)
    expect(page.get_by_role("heading", name="Hello, Story")).to_be_visible()
    page.get_by_role("link", name="Links").click()
    page.get_by_label("UTM source").fill("newsletter")
    page.get_by_label("Custom code (optional)").fill(f"story-{suffix}")
    page.get_by_role("button", name="Create link").click()
    expect(page.get_by_role("heading", name="Your new link")).to_be_visible()
    short_url = page.locator("#created-url").input_value()
    assert short_url == f"{live_server.url}/r/story-{suffix}"
    expect(page.locator(".qr svg").first).to_be_visible()
    screenshot(page, "portal-links-desktop")

    # A visitor clicks it, signs up and buys credits on the demo shop.
    visitor = new_page()
    visitor.goto(short_url)
    expect(visitor).to_have_url(re.compile(r"/demo-shop\?.*ref=.*click_id="))
    expect(visitor.get_by_text("DEMO", exact=False).first).to_be_visible()
    visitor.get_by_label("Work email").fill(f"buyer-{suffix}@example.net")
    visitor.get_by_role("button", name="Sign up").click()
    screenshot(visitor, "demo-shop-desktop")
    visitor.get_by_role("button", name="Buy the Growth pack").click()
    expect(visitor.get_by_role("status")).to_contain_text("Thank you!")

    # The commission shows on the partner's dashboard: 5% (Starter) of $100.00.
    page.get_by_role("link", name="Dashboard").click()
    kpis = page.get_by_label("Key numbers")
    expect(kpis).to_contain_text("$100.00")
    expect(kpis).to_contain_text("$5.00")
    expect(kpis.locator(".kpi", has_text="Clicks").locator(".kpi-value")).to_have_text("1")
    screenshot(page, "portal-dashboard-new-partner-desktop")

    # The admin approves the commission in the review queue.
    admin.get_by_role("link", name="Partners").click()
    admin.get_by_label("Search").fill(email_address)
    admin.get_by_role("button", name="Search").click()
    admin.get_by_role("link", name=name).click()
    admin.get_by_role("link", name=re.compile(r"^All \d+")).click()
    admin.get_by_role("button", name=re.compile(r"^Approve commission")).click()
    expect(admin.get_by_role("status")).to_contain_text("Commission approved")
    expect(admin.locator("tbody")).to_contain_text("Approved")

    # The partner sets platform credit as the payout method and requests a payout.
    page.get_by_role("link", name="Payouts").click()
    expect(page.get_by_label("Key numbers").or_(page.get_by_label("Balances"))).to_contain_text("$5.00")
    method_form = page.locator("form[action='/portal/payouts/method']")
    method_form.get_by_label("Method").select_option("platform_credit")
    method_form.get_by_role("button", name="Save method").click()
    expect(page.get_by_role("status")).to_contain_text("Payout method saved")
    request_form = page.locator("form[action='/portal/payouts/request']")
    request_form.get_by_label("Amount").fill("5.00")
    request_form.get_by_role("button", name="Request payout").click()
    expect(page.get_by_role("status")).to_contain_text("Payout requested")
    expect(page.locator("tbody")).to_contain_text("Pending")

    # The owner adds a finance colleague, who builds the batch and approves it.
    finance_email = f"finance-{suffix}@example.com"
    admin.get_by_role("link", name="Staff").click()
    add = admin.locator("form[action='/console/staff']")
    add.get_by_label("Name").fill("Fin Ance")
    add.get_by_label("Email").fill(finance_email)
    add.get_by_label("First password").fill(PASSWORD)
    add.get_by_label("Role").select_option("finance")
    add.get_by_role("button", name="Add").click()
    expect(admin.get_by_role("status")).to_contain_text("Staff member added")
    finance = new_page()
    log_in_staff(finance, finance_email, PASSWORD)
    finance.get_by_role("link", name="Payouts").click()
    finance.get_by_label("Method").select_option("platform_credit")
    finance.get_by_role("button", name="Build batch").click()
    expect(finance.get_by_role("heading", name=re.compile(r"Payout batch #\d+"))).to_be_visible()
    expect(finance.locator("tbody")).to_contain_text(name)
    finance.get_by_role("button", name="Approve batch").click()
    expect(finance.get_by_role("status")).to_contain_text("Approval recorded")
    expect(finance.get_by_role("main")).to_contain_text("Approved by Fin Ance")
    reload_until(finance, "Completed")
    screenshot(finance, "console-payout-batch-desktop")

    # The partner sees the payout paid, with its statement.
    page.reload()
    reload_until(page, "Paid", "tbody")
    statement = page.get_by_role("link", name=re.compile(r"^PDF"))
    with page.expect_download() as download:
        statement.first.click()
    assert download.value.suggested_filename.endswith(".pdf")


def test_failed_forms_say_what_is_wrong(page: Any, live_server: LiveServer) -> None:
    page.goto("/portal/login")
    page.get_by_label("Email").fill(MARKER_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password.")

    page.goto("/portal/apply")
    page.get_by_label("Full name or company").fill("No Agreement")
    page.get_by_label("Email").fill(f"noagree-{secrets.token_hex(3)}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Country").select_option("FR")
    page.get_by_role("button", name="Send my application").click()
    expect(page.get_by_role("alert")).to_contain_text("Please read and accept the partner agreement.")
    expect(page.get_by_label("I have read and accept the partner agreement.")).to_have_attribute("aria-invalid", "true")

    log_in_partner(page, "dev@example.com")
    page.goto("/portal/payouts")
    request_form = page.locator("form[action='/portal/payouts/request']")
    request_form.get_by_label("Amount").fill("999999.00")
    request_form.get_by_role("button", name="Request payout").click()
    expect(page.get_by_role("alert")).to_contain_text("That didn't work.")


def test_the_dashboard_period_picker_swaps_the_numbers_in_place(page: Any) -> None:
    log_in_partner(page, MARKER_EMAIL)
    expect(page.locator("canvas[data-chart]")).to_have_attribute("data-drawn", "1")
    page.get_by_role("navigation", name="Period").get_by_role("link", name="7 days").click()
    expect(page).to_have_url(re.compile(r"/portal\?period=7d$"))
    expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "true")
    expect(page.locator("canvas[data-chart]")).to_have_attribute("data-drawn", "1")
    screenshot(page, "portal-dashboard-desktop")


def test_a_partner_disputes_a_commission_and_staff_decide_it(page: Any, new_page: Any) -> None:
    log_in_partner(page, "ben@example.com")
    page.get_by_role("link", name="Commissions").click()
    page.get_by_role("link", name=re.compile(r"^Dispute commission")).first.click()
    page.get_by_label("What is it about?").select_option("wrong_amount")
    page.get_by_label(re.compile(r"^Amount you claim")).fill("3.00")
    page.get_by_label("Explain what happened").fill("The rate should have been the Pro rate.")
    page.get_by_role("button", name="Open dispute").click()
    expect(page.get_by_role("status")).to_contain_text("Dispute opened")
    dispute_url = page.url.split("?")[0]

    staff = new_page()
    log_in_staff(staff)
    staff.get_by_role("link", name="Disputes").click()
    staff.locator("tbody a", has_text="#").first.click()
    staff.get_by_label("Reply to the partner").fill("Checking with finance.")
    staff.get_by_role("button", name="Send reply").click()
    expect(staff.get_by_role("status")).to_contain_text("Reply sent")
    staff.get_by_role("combobox", name="Decision").select_option("accept")
    staff.get_by_label(re.compile(r"^Adjustment amount")).fill("3.00")
    staff.get_by_label(re.compile(r"^Note to the partner")).fill("You are right; topped up.")
    staff.get_by_role("button", name="Decide").click()
    expect(staff.get_by_role("status")).to_contain_text("Dispute decided")

    page.goto(dispute_url)
    expect(page.get_by_role("main")).to_contain_text("Checking with finance.")
    expect(page.get_by_role("status")).to_contain_text("$3.00 was added to your balance")


def test_staff_create_an_api_key_and_see_it_once(page: Any) -> None:
    log_in_staff(page)
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("browser test host")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key").input_value()
    assert re.fullmatch(r"npk_[a-z0-9]{8}_[A-Za-z0-9]{40}", key)
    page.goto("/console/api-keys")
    expect(page.get_by_label("New API key")).to_have_count(0)
    expect(page.locator("tbody")).to_contain_text("browser test host")


def test_a_partner_resets_a_forgotten_password(page: Any, live_server: LiveServer) -> None:
    page.goto("/portal/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("eve@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("status")).to_contain_text("a reset link is on its way")
    token = emailed_token(live_server.mail_dir, "eve@example.com", "/portal/reset-password")
    page.goto(f"/portal/reset-password?token={token}")  # the emailed link
    page.locator("#f-password").fill(PASSWORD)
    page.get_by_label("New password again").fill(PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")
    log_in_partner(page, "eve@example.com", PASSWORD)


PORTAL_PAGES = (
    "/portal",
    "/portal/links",
    "/portal/commissions",
    "/portal/team",
    "/portal/payouts",
    "/portal/disputes",
    "/portal/profile",
)
CONSOLE_PAGES = (
    "/console",
    "/console/applications",
    "/console/partners",
    "/console/partners/1",
    "/console/commissions",
    "/console/payouts",
    "/console/disputes",
    "/console/programs/1",
    "/console/staff",
    "/console/api-keys",
    "/console/audit",
    "/console/settings",
)
PUBLIC_PAGES = ("/portal/login", "/portal/apply", "/portal/reset-password", "/console/login", "/demo-shop")


def test_a_phone_shows_every_page_without_horizontal_scrolling(new_page: Any) -> None:
    phone = new_page(PHONE)
    wide = {}
    for path in PUBLIC_PAGES:
        phone.goto(path)
        wide[path] = horizontal_overflow(phone)
    screenshot(phone, "portal-apply-phone")
    log_in_partner(phone, MARKER_EMAIL)
    for path in PORTAL_PAGES:
        phone.goto(path)
        wide[path] = horizontal_overflow(phone)
        if path == "/portal":
            screenshot(phone, "portal-dashboard-phone")
    staff = new_page(PHONE)
    log_in_staff(staff)
    for path in CONSOLE_PAGES:
        staff.goto(path)
        wide[path] = horizontal_overflow(staff)
    staff.goto("/console")
    screenshot(staff, "console-overview-phone")
    assert {path: px for path, px in wide.items() if px > 0} == {}


def test_the_main_pages_have_no_serious_accessibility_violations(page: Any, new_page: Any) -> None:
    found = {}
    for path in PUBLIC_PAGES:
        page.goto(path)
        found[path] = serious_violations(page)
    partner = new_page()
    log_in_partner(partner, MARKER_EMAIL)
    for path in PORTAL_PAGES:
        partner.goto(path)
        found[path] = serious_violations(partner)
    staff = new_page()
    log_in_staff(staff)
    for path in CONSOLE_PAGES:
        staff.goto(path)
        found[path] = serious_violations(staff)
        if path == "/console":
            screenshot(staff, "console-overview-desktop")
        if path == "/console/partners/1":
            screenshot(staff, "console-partner-desktop")
    assert {path: issues for path, issues in found.items() if issues} == {}


def test_the_demo_partner_can_log_in_with_the_documented_password(page: Any) -> None:
    log_in_partner(page, MARKER_EMAIL, PARTNER_PASSWORD)
    expect(page.get_by_role("heading", name="Hello, Ada")).to_be_visible()


def test_the_accessibility_check_does_catch_a_serious_violation(page: Any) -> None:
    """The axe check above is not vacuous: an image without a text alternative is reported."""
    page.set_content('<!doctype html><html lang="en"><body><main><img src="data:,"></main></body></html>')
    assert "image-alt" in [issue["id"] for issue in serious_violations(page)]


def _fresh_code(secret: str, used: set[str]) -> str:
    """The authenticator's current code, waiting for the next 30 s step if this one was already used (a
    code is accepted once)."""
    generator = pyotp.TOTP(secret)
    code = generator.now()
    while code in used:
        time.sleep(1)
        code = generator.now()
    used.add(code)
    return code


def test_a_staff_member_turns_on_two_factor_and_then_needs_a_code_to_log_in(page: Any, new_page: Any) -> None:
    log_in_staff(page)
    page.get_by_role("link", name="Staff").click()
    email = f"guard-{secrets.token_hex(3)}@example.com"
    form = page.locator("form[action='/console/staff']")
    form.get_by_label("Name").fill("Gita Guard")
    form.get_by_label("Email").fill(email)
    form.get_by_label("First password").fill(PASSWORD)
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Add").click()
    expect(page.locator("tbody")).to_contain_text(email)

    guard = new_page()
    log_in_staff(guard, email, PASSWORD)
    guard.get_by_role("link", name="Two-factor login").click()
    guard.get_by_role("button", name="Set up two-factor authentication").click()
    expect(guard.get_by_label("QR code for your authenticator app").locator("svg")).to_be_visible()
    secret = guard.locator("#totp-secret").inner_text()
    used: set[str] = set()
    guard.get_by_label("Code from your app").fill("000000")
    guard.get_by_role("button", name="Turn on").click()
    expect(guard.get_by_role("alert")).to_contain_text("invalid one-time code")
    guard.get_by_label("Code from your app").fill(_fresh_code(secret, used))
    guard.get_by_role("button", name="Turn on").click()
    expect(guard.get_by_role("status")).to_contain_text("Two-factor authentication is on")
    guard.get_by_role("button", name="Log out").click()

    guard.goto("/console/login")
    guard.get_by_label("Email").fill(email)
    guard.get_by_label("Password").fill(PASSWORD)
    guard.get_by_role("button", name="Log in").click()
    expect(guard.get_by_role("alert")).to_contain_text("one-time code")  # the password alone is not enough
    guard.get_by_label("Password").fill(PASSWORD)
    guard.get_by_label("One-time code").fill(_fresh_code(secret, used))
    guard.get_by_role("button", name="Log in").click()
    guard.wait_for_url(re.compile(r"/console(\?.*)?$"))
    expect(guard.get_by_role("heading", level=1)).to_be_visible()
