from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from partners.db.session import Database
from partners.db.types import utcnow
from partners.kit.logging import get_logger
from partners.settings import Settings
from partners.tracking import api as tracking_api
from partners.tracking import service as tracking_service
from partners.tracking.models import TrackingLink
from partners.tracking.service import attribute_customer, hash_ip
from tests.factories import create_partner, create_program
from tests.tracking.conftest import (
    GOOGLEBOT_UA,
    VISITOR_IP,
    World,
    add_link,
    recorder_of,
    stored_clicks,
)


async def test_redirect_is_a_302_with_ref_click_id_utm_and_a_click_cookie(
    visitor: httpx.AsyncClient, world: World, database: Database
) -> None:
    await add_link(
        database,
        world.alice,
        code="spring",
        destination_url="https://namaskah.app/pricing?plan=pro&ref=someone-else#top",
        utm_source="blog",
        utm_campaign="spring",
    )
    response = await visitor.get("/r/spring")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path, location.fragment) == (
        "https",
        "namaskah.app",
        "/pricing",
        "top",
    )
    query = parse_qs(location.query)
    click_id = query["click_id"][0]
    assert len(click_id) == 32
    assert query == {
        "plan": ["pro"],
        "utm_source": ["blog"],
        "utm_campaign": ["spring"],
        "ref": [world.alice.referral_code],
        "click_id": [click_id],
    }
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"np_click={click_id};")
    assert f"Max-Age={30 * 86400}" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"] == click_id
    assert response.headers["content-length"] == "0"


async def test_clicks_are_stored_after_a_flush_with_a_hashed_ip_never_the_raw_one(
    visitor: httpx.AsyncClient, app: Any, world: World, database: Database, settings: Settings
) -> None:
    link = await add_link(database, world.alice, code="hashme")
    response = await visitor.get(
        "/r/HashMe", headers={"Referer": "https://blog.example.com/post", "CF-IPCountry": "in"}
    )
    assert response.status_code == 302
    click_id = parse_qs(urlsplit(response.headers["location"]).query)["click_id"][0]
    assert await stored_clicks(database) == []  # not written in the request
    assert await recorder_of(app).flush() == 1

    [click] = await stored_clicks(database)
    assert click.click_id == click_id
    assert (click.link_id, click.partner_id) == (link.id, world.alice.id)
    assert click.ip_hash == hash_ip(settings, VISITOR_IP)
    assert click.referrer == "https://blog.example.com/post"
    assert click.country == "IN"
    assert click.is_bot is False
    assert click.previous_click_id is None
    assert abs(click.occurred_at - utcnow()) < timedelta(minutes=1)
    row = {column.name: getattr(click, column.key) for column in type(click).__table__.columns}
    assert not any(VISITOR_IP in str(value) for value in row.values())


async def test_a_second_click_remembers_the_browsers_previous_click(
    visitor: httpx.AsyncClient, app: Any, world: World, database: Database
) -> None:
    await add_link(database, world.alice, code="first")
    await add_link(database, world.bob, code="second")
    first = await visitor.get("/r/first")
    second = await visitor.get("/r/second", headers={"X-Country": "XX"})
    assert first.status_code == second.status_code == 302
    await recorder_of(app).flush()
    older, newer = await stored_clicks(database)
    assert newer.previous_click_id == older.click_id
    assert newer.partner_id == world.bob.id
    assert newer.country is None  # "XX" means unknown


async def test_bot_clicks_are_flagged_and_counted_apart(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, world: World, database: Database
) -> None:
    await add_link(database, world.alice, code="counted")
    for _ in range(3):
        assert (await visitor.get("/r/counted")).status_code == 302
    assert (await visitor.get("/r/counted", headers={"User-Agent": GOOGLEBOT_UA})).status_code == 302
    assert (await visitor.get("/r/counted", headers={"User-Agent": "curl/8.5.0"})).status_code == 302
    await recorder_of(app).flush()

    assert sorted(click.is_bot for click in await stored_clicks(database)) == [
        False,
        False,
        False,
        True,
        True,
    ]
    response = await client.get("/affiliate/links", headers=world.alice_headers)
    [link] = response.json()["items"]
    assert link["stats"] == {"clicks": 3, "unique_clicks": 1, "bot_clicks": 2, "signups": 0, "customers": 0}


async def test_link_stats_respect_the_period(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, world: World, database: Database
) -> None:
    await add_link(database, world.alice, code="period")
    await visitor.get("/r/period")
    await recorder_of(app).flush()
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    later = await client.get("/affiliate/links", headers=world.alice_headers, params={"start": tomorrow})
    assert later.json()["items"][0]["stats"]["clicks"] == 0
    before = await client.get("/affiliate/links", headers=world.alice_headers, params={"end": tomorrow})
    assert before.json()["items"][0]["stats"]["clicks"] == 1


async def test_unknown_or_inactive_code_is_a_friendly_html_404(
    visitor: httpx.AsyncClient, app: Any, world: World, database: Database
) -> None:
    await add_link(database, world.alice, code="retired", active=False)
    for path in ("/r/no-such-link", "/r/retired"):
        response = await visitor.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "This link isn't available" in response.text
        assert "set-cookie" not in response.headers
    assert recorder_of(app).pending == 0


async def test_links_of_a_suspended_partner_do_not_redirect(
    visitor: httpx.AsyncClient, world: World, database: Database
) -> None:
    await add_link(database, world.bob, code="bobs")
    async with database.write() as session:
        bob = await session.get(type(world.bob), world.bob.id)
        assert bob is not None
        bob.status = "suspended"
    assert (await visitor.get("/r/bobs")).status_code == 404


async def test_the_click_keeps_the_first_of_repeated_headers_and_the_second_country_header(
    visitor: httpx.AsyncClient, app: Any, world: World, database: Database
) -> None:
    await add_link(database, world.alice, code="headers")
    headers = [
        ("User-Agent", "first agent"),
        ("User-Agent", "second agent"),
        ("Referer", "https://a.example/"),
        ("Referer", "https://b.example/"),
        ("CF-IPCountry", "XX"),  # unknown: the next header is asked
        ("X-Country", " de "),
    ]
    assert (await visitor.get("/r/headers", headers=headers)).status_code == 302
    await recorder_of(app).flush()
    [click] = await stored_clicks(database)
    assert (click.user_agent, click.referrer, click.country) == ("first agent", "https://a.example/", "DE")


async def test_a_redirect_that_fails_is_a_friendly_500_logged_and_counted(
    visitor: httpx.AsyncClient, app: Any, world: World, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_link(database, world.alice, code="fine")

    async def database_down(*args: Any) -> None:
        raise ConnectionError("database down")

    errors = REGISTRY.get_sample_value("partners_http_requests_total", _redirects("500")) or 0.0
    monkeypatch.setattr(tracking_service, "resolve_link", database_down)
    # A logger not yet used, so that capture_logs sees it (loggers are cached on first use).
    monkeypatch.setattr(tracking_api, "logger", get_logger(tracking_api.__name__))
    with capture_logs() as logs:
        response = await visitor.get("/r/uncached")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text
    assert [log["event"] for log in logs if log["log_level"] == "error"] == ["redirect failed"]
    assert REGISTRY.get_sample_value("partners_http_requests_total", _redirects("500")) == errors + 1
    assert recorder_of(app).pending == 0
    monkeypatch.undo()
    assert (await visitor.get("/r/fine")).status_code == 302  # the next click is answered as usual


def _redirects(status: str) -> dict[str, str]:
    return {"method": "GET", "route": "/r/{code}", "status": status}


async def test_the_redirect_route_answers_like_the_fast_path(app: Any, world: World, database: Database) -> None:
    """An app that does not answer `/r/` first (FastAPI's own stack, routing included) redirects the same."""
    await add_link(database, world.alice, code="routed")

    async def routed_app(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    transport = httpx.ASGITransport(app=routed_app, client=(VISITOR_IP, 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/r/routed")
        missing = await http.get("/r/no-such-link")
    assert response.status_code == 302
    click_id = parse_qs(urlsplit(response.headers["location"]).query)["click_id"][0]
    assert response.headers["set-cookie"].startswith(f"np_click={click_id};")
    assert missing.status_code == 404
    await recorder_of(app).flush()
    [click] = await stored_clicks(database)
    assert click.click_id == click_id


async def test_head_redirects_without_recording_a_click(
    visitor: httpx.AsyncClient, app: Any, world: World, database: Database
) -> None:
    await add_link(database, world.alice, code="preview")
    response = await visitor.head("/r/preview")
    assert response.status_code == 302
    assert "click_id" not in response.headers["location"]
    assert "set-cookie" not in response.headers
    assert recorder_of(app).pending == 0


async def test_link_stats_count_signups_and_buying_customers_through_the_links_clicks(
    visitor: httpx.AsyncClient,
    client: httpx.AsyncClient,
    app: Any,
    world: World,
    database: Database,
    settings: Settings,
) -> None:
    await add_link(database, world.alice, code="converts")
    await add_link(database, world.alice, code="quiet")
    click_ids = []
    for _ in range(3):
        response = await visitor.get("/r/converts")
        click_ids.append(parse_qs(urlsplit(response.headers["location"]).query)["click_id"][0])
    await recorder_of(app).flush()
    async with database.write() as session:
        for number, click_id in enumerate(click_ids):
            customer = await attribute_customer(
                session,
                settings,
                program=world.program,
                external_id=f"cust-{number}",
                email=f"c{number}@example.com",
                click_id=click_id,
                referral_code=None,
                coupon_code=None,
                ip=None,
                now=utcnow(),
            )
            assert customer.partner_id == world.alice.id
            if number == 0:
                customer.first_purchase_at = utcnow()
            if number == 2:
                customer.partner_id = world.bob.id  # re-assigned away: no longer Alice's

    response = await client.get("/affiliate/links", headers=world.alice_headers)
    stats = {item["code"]: item["stats"] for item in response.json()["items"]}
    assert stats["converts"] == {
        "clicks": 3,
        "unique_clicks": 1,
        "bot_clicks": 0,
        "signups": 2,
        "customers": 1,
    }
    assert stats["quiet"]["signups"] == 0


async def test_a_partners_plain_referral_link_redirects_to_the_program_landing_page(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings, landing_url="https://namaskah.app/welcome")
        partner = await create_partner(session, program, tiers["starter"], referral_code="adaref")
        pending = await create_partner(session, program, tiers["starter"], referral_code="penref", status="pending")
    response = await client.get("/r/adaref")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://namaskah.app/welcome?")
    assert "ref=adaref" in location
    again = await client.get("/r/adaref")
    assert again.status_code == 302
    assert (await client.get(f"/r/{pending.referral_code}")).status_code == 404
    async with database.read() as session:
        links = (await session.execute(sa.select(TrackingLink).where(TrackingLink.partner_id == partner.id))).scalars()
        assert [link.code for link in links] == ["adaref"]
