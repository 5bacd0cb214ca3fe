from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity.deps import VerifiedApiKeys
from partners.identity.models import ApiKey
from partners.settings import Settings
from tests.identity.conftest import bearer

KEY_FORMAT = re.compile(r"npk_([a-z0-9]{8})_([A-Za-z0-9]{32,})")


async def _create_key(
    client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str], name: str = "host"
) -> dict[str, object]:
    response = await client.post("/admin/api-keys", headers=headers, json={"name": name, "scopes": scopes})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_the_full_key_is_shown_once_and_stored_only_as_a_hash(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    created = await _create_key(client, admin_headers, ["events:write", "partners:read"])
    full_key = str(created["key"])
    match = KEY_FORMAT.fullmatch(full_key)
    assert match is not None
    prefix, secret = match.groups()
    assert created["prefix"] == prefix
    assert created["scopes"] == ["events:write", "partners:read"]

    listed = await client.get("/admin/api-keys", headers=admin_headers)
    assert listed.status_code == 200
    assert "key" not in listed.json()[0]
    assert listed.json()[0]["masked_key"].startswith(f"npk_{prefix}_")
    assert secret not in listed.text

    async with database.read() as session:
        rows = (await session.execute(sa.select(ApiKey.__table__))).all()
    assert len(rows) == 1
    assert all(secret not in str(value) for value in rows[0])
    assert rows[0].created_by_id is not None


@pytest.mark.parametrize("path", ["/_test/events", "/_test/events-own-writes"])
async def test_a_key_authenticates_by_header_or_bearer(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], path: str
) -> None:
    created = await _create_key(client, admin_headers, ["events:write"])
    full_key = str(created["key"])
    by_header = await client.post(path, headers={"X-API-Key": full_key})
    assert by_header.status_code == 200
    assert by_header.json() == {"key_id": created["id"], "scopes": ["events:write"]}
    assert (await client.post(path, headers=bearer(full_key))).status_code == 200
    async with database.read() as session:
        assert (await session.scalars(sa.select(ApiKey.last_used_at))).one() is not None


@pytest.mark.parametrize("path", ["/_test/events", "/_test/events-own-writes"])
async def test_missing_malformed_or_altered_keys_get_401(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    full_key = str((await _create_key(client, admin_headers, ["events:write"]))["key"])
    altered = full_key[:-1] + ("a" if full_key[-1] != "a" else "b")
    for headers in ({}, {"X-API-Key": "nope"}, {"X-API-Key": altered}):
        response = await client.post(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/_test/events", "/_test/events-own-writes"])
async def test_a_key_without_the_scope_gets_403(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    full_key = str((await _create_key(client, admin_headers, ["partners:read"]))["key"])
    assert (await client.get("/_test/partners", headers={"X-API-Key": full_key})).status_code == 200
    response = await client.post(path, headers={"X-API-Key": full_key})
    assert response.status_code == 403
    assert "events:write" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/_test/events", "/_test/events-own-writes"])
async def test_a_revoked_key_gets_401(client: httpx.AsyncClient, admin_headers: dict[str, str], path: str) -> None:
    created = await _create_key(client, admin_headers, ["events:write"])
    assert (await client.post(path, headers={"X-API-Key": str(created["key"])})).status_code == 200
    assert (await client.delete(f"/admin/api-keys/{created['id']}", headers=admin_headers)).status_code == 204
    assert (await client.post(path, headers={"X-API-Key": str(created["key"])})).status_code == 401
    listed = (await client.get("/admin/api-keys", headers=admin_headers)).json()
    assert listed[0]["revoked_at"] is not None
    assert (await client.delete("/admin/api-keys/999999", headers=admin_headers)).status_code == 404


async def test_a_key_revoked_by_another_process_stops_working_within_the_trust_window(
    app: Any, client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    """This process trusts a key it verified for `trust_seconds` (`VerifiedApiKeys`); a revocation written by
    another process (here: straight to the database) reaches it when that time is up."""
    app.state.verified_api_keys = VerifiedApiKeys(trust_seconds=0.5)
    created = await _create_key(client, admin_headers, ["events:write"])
    headers = {"X-API-Key": str(created["key"])}
    assert (await client.post("/_test/events", headers=headers)).status_code == 200
    async with database.write() as session:
        await session.execute(sa.update(ApiKey).values(revoked_at=utcnow()))
    assert (await client.post("/_test/events", headers=headers)).status_code == 200  # still trusted
    await asyncio.sleep(0.6)
    assert (await client.post("/_test/events", headers=headers)).status_code == 401


async def test_unknown_scopes_are_refused(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/admin/api-keys", headers=admin_headers, json={"name": "x", "scopes": ["root"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "scopes"


async def test_a_viewer_cannot_manage_api_keys(client: httpx.AsyncClient, viewer_headers: dict[str, str]) -> None:
    response = await client.post(
        "/admin/api-keys", headers=viewer_headers, json={"name": "x", "scopes": ["events:write"]}
    )
    assert response.status_code == 403
    assert (await client.get("/admin/api-keys", headers=viewer_headers)).status_code == 403


async def test_an_api_key_is_not_a_staff_session(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    full_key = str((await _create_key(client, admin_headers, ["events:write"]))["key"])
    assert (await client.get("/admin/api-keys", headers=bearer(full_key))).status_code == 401
    assert (await client.post("/_test/events", headers=admin_headers)).status_code == 401


async def test_last_used_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], settings: Settings
) -> None:
    full_key = str((await _create_key(client, admin_headers, ["partners:read"]))["key"])
    recently = utcnow() - timedelta(seconds=10)
    async with database.write() as session:
        await session.execute(sa.update(ApiKey).values(last_used_at=recently))
    assert (await client.get("/_test/partners", headers={"X-API-Key": full_key})).status_code == 200
    async with database.read() as session:
        assert (await session.scalars(sa.select(ApiKey.last_used_at))).one() == recently
