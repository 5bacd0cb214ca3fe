from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from partners.db.session import Database
from partners.settings import Settings
from tests.factories import create_partner, partner_headers
from tests.tracking.conftest import World, add_link

GENERATE = "/affiliate/links/generate"


def error_fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in response.json()["errors"]]


async def test_generate_link_returns_short_link_and_destination_preview(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    response = await client.post(
        GENERATE,
        headers=world.alice_headers,
        json={
            "destination_url": "https://namaskah.app/pricing?plan=pro#top",
            "utm_source": "blog",
            "utm_medium": "article",
            "utm_campaign": "spring",
            "sub_ids": {"sub1": "post-42", "sub5": "footer"},
        },
    )
    assert response.status_code == 201, response.text
    link = response.json()
    assert len(link["code"]) == 8
    assert link["short_url"] == f"{settings.base_url}/r/{link['code']}"
    assert link["sub_ids"] == {"sub1": "post-42", "sub5": "footer"}
    preview = urlsplit(link["final_url_preview"])
    assert (preview.netloc, preview.path, preview.fragment) == ("namaskah.app", "/pricing", "top")
    assert parse_qs(preview.query) == {
        "plan": ["pro"],
        "utm_source": ["blog"],
        "utm_medium": ["article"],
        "utm_campaign": ["spring"],
        "ref": [world.alice.referral_code],
    }


async def test_custom_slug_is_used_and_a_taken_slug_is_409(client: httpx.AsyncClient, world: World) -> None:
    body = {"destination_url": "https://www.namaskah.app/", "slug": "alice-spring"}
    first = await client.post(GENERATE, headers=world.alice_headers, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["code"] == "alice-spring"
    taken = await client.post(GENERATE, headers=world.bob_headers, json=body)
    assert taken.status_code == 409
    assert error_fields(taken) == ["slug"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example.com/", "not a destination this program allows"),
        ("https://namaskah.app.evil.com/", "not a destination this program allows"),
        ("https://namaskah.app@evil.com/", "must not carry credentials"),
        ("ftp://namaskah.app/file", "http(s) URL"),
        ("javascript:alert(1)", "http(s) URL"),
        ("namaskah.app/pricing", "http(s) URL"),
    ],
)
async def test_destination_outside_the_allowed_hosts_is_422(
    client: httpx.AsyncClient, world: World, url: str, reason: str
) -> None:
    response = await client.post(GENERATE, headers=world.alice_headers, json={"destination_url": url})
    assert response.status_code == 422
    assert error_fields(response) == ["destination_url"]
    assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"slug": "AB"}, "slug"),
        ({"slug": "has space"}, "slug"),
        ({"slug": "x" * 65}, "slug"),
        ({"utm_source": "u" * 201}, "utm_source"),
        ({"utm_content": "c" * 201}, "utm_content"),
        ({"sub_ids": {"sub6": "x"}}, "sub_ids.sub6.[key]"),
        ({"sub_ids": {"sub1": "x" * 201}}, "sub_ids.sub1"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, world: World, changes: dict[str, Any], field: str
) -> None:
    body = {"destination_url": "https://namaskah.app/"} | changes
    response = await client.post(GENERATE, headers=world.alice_headers, json=body)
    assert response.status_code == 422
    assert field in error_fields(response)


async def test_a_pending_partner_cannot_generate_links(
    client: httpx.AsyncClient, world: World, database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        pending = await create_partner(session, world.program, world.tiers["starter"], status="pending")
        headers = await partner_headers(session, settings, pending)
    response = await client.post(GENERATE, headers=headers, json={"destination_url": "https://namaskah.app/"})
    assert response.status_code == 403
    assert (await client.post(GENERATE, json={"destination_url": "https://namaskah.app/"})).status_code == 401


async def test_a_partner_lists_only_their_own_links(
    client: httpx.AsyncClient, world: World, database: Database
) -> None:
    for number in range(3):
        await add_link(database, world.alice, code=f"alice-{number}")
    await add_link(database, world.bob, code="bob-only")

    alices = await client.get("/affiliate/links", headers=world.alice_headers, params={"limit": 2})
    assert alices.status_code == 200
    page = alices.json()
    assert page["total"] == 3
    assert [item["code"] for item in page["items"]] == ["alice-2", "alice-1"]
    rest = await client.get("/affiliate/links", headers=world.alice_headers, params={"limit": 2, "offset": 2})
    assert [item["code"] for item in rest.json()["items"]] == ["alice-0"]

    bobs = await client.get("/affiliate/links", headers=world.bob_headers)
    assert [item["code"] for item in bobs.json()["items"]] == ["bob-only"]
    assert bobs.json()["items"][0]["stats"] == {
        "clicks": 0,
        "unique_clicks": 0,
        "bot_clicks": 0,
        "signups": 0,
        "customers": 0,
    }


async def test_a_partner_switches_its_link_off_and_on_and_cannot_touch_anothers(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, world: World, database: Database
) -> None:
    link = await add_link(database, world.alice, code="summer")
    assert (await visitor.get("/r/summer")).status_code == 302

    bobs_try = await client.post(f"/affiliate/links/{link.id}/deactivate", headers=world.bob_headers)
    assert bobs_try.status_code == 404 and error_fields(bobs_try) == ["link_id"]
    assert (await visitor.get("/r/summer")).status_code == 302  # Bob changed nothing

    off = await client.post(f"/affiliate/links/{link.id}/deactivate", headers=world.alice_headers)
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await visitor.get("/r/summer")).status_code == 404  # at once in this process (cache dropped)
    listed = await client.get("/affiliate/links", headers=world.alice_headers)
    assert [(item["code"], item["active"]) for item in listed.json()["items"]] == [("summer", False)]

    on = await client.post(f"/affiliate/links/{link.id}/activate", headers=world.alice_headers)
    assert on.status_code == 200 and on.json()["active"] is True
    assert (await visitor.get("/r/summer")).status_code == 302
    missing = await client.post("/affiliate/links/999999/activate", headers=world.alice_headers)
    assert missing.status_code == 404
