from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa

from partners.db.session import Database
from partners.identity.models import StaffUser
from partners.identity.roles import Role
from tests.identity.conftest import PASSWORD, login, login_bearer, make_staff


def _new_staff(email: str, role: str) -> dict[str, str]:
    return {"email": email, "name": "New Person", "password": PASSWORD, "role": role}


async def test_an_admin_can_create_and_list_staff(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await client.post("/admin/staff", headers=admin_headers, json=_new_staff("fin@example.com", "finance"))
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "finance"
    assert "password" not in created.text
    listed = await client.get("/admin/staff", headers=admin_headers)
    assert [user["email"] for user in listed.json()] == ["admin@example.com", "fin@example.com"]
    assert (await login(client, "fin@example.com")).status_code == 200


async def test_a_viewer_cannot_create_staff(client: httpx.AsyncClient, viewer_headers: dict[str, str]) -> None:
    response = await client.post("/admin/staff", headers=viewer_headers, json=_new_staff("x@example.com", "viewer"))
    assert response.status_code == 403
    assert "staff:manage" in response.json()["detail"]


async def test_duplicate_emails_and_short_passwords_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    duplicate = await client.post("/admin/staff", headers=admin_headers, json=_new_staff("ADMIN@example.com", "viewer"))
    assert duplicate.status_code == 409
    short = await client.post(
        "/admin/staff",
        headers=admin_headers,
        json=_new_staff("x@example.com", "viewer") | {"password": "short"},
    )
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "password"


async def test_an_admin_cannot_create_or_change_an_owner(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    owner_id = await make_staff(database, "owner@example.com", Role.OWNER)
    viewer_id = await make_staff(database, "viewer@example.com", Role.VIEWER)
    create = await client.post("/admin/staff", headers=admin_headers, json=_new_staff("o2@example.com", "owner"))
    assert create.status_code == 403
    promote = await client.patch(f"/admin/staff/{viewer_id}", headers=admin_headers, json={"role": "owner"})
    assert promote.status_code == 403
    demote = await client.patch(f"/admin/staff/{owner_id}", headers=admin_headers, json={"role": "viewer"})
    assert demote.status_code == 403
    deactivate = await client.patch(f"/admin/staff/{owner_id}", headers=admin_headers, json={"is_active": False})
    assert deactivate.status_code == 403


async def test_an_owner_can_create_an_owner_and_then_step_down(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    created = await client.post("/admin/staff", headers=owner_headers, json=_new_staff("o2@example.com", "owner"))
    assert created.status_code == 201
    me = (await client.get("/auth/me", headers=owner_headers)).json()["user"]
    stepped_down = await client.patch(f"/admin/staff/{me['id']}", headers=owner_headers, json={"role": "admin"})
    assert stepped_down.status_code == 200
    assert stepped_down.json()["role"] == "admin"


async def test_the_last_owner_cannot_be_demoted(client: httpx.AsyncClient, owner_headers: dict[str, str]) -> None:
    me = (await client.get("/auth/me", headers=owner_headers)).json()["user"]
    response = await client.patch(f"/admin/staff/{me['id']}", headers=owner_headers, json={"role": "admin"})
    assert response.status_code == 409
    assert "last active owner" in response.json()["detail"]
    assert (await client.get("/auth/me", headers=owner_headers)).json()["user"]["role"] == "owner"


async def test_a_deactivated_owner_does_not_count_as_another_owner(
    client: httpx.AsyncClient, database: Database, owner_headers: dict[str, str]
) -> None:
    other_owner_id = await make_staff(database, "o2@example.com", Role.OWNER)
    o2_headers = await login_bearer(client, "o2@example.com")
    deactivated = await client.patch(f"/admin/staff/{other_owner_id}", headers=owner_headers, json={"is_active": False})
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False
    assert (await client.get("/auth/me", headers=o2_headers)).status_code == 401
    me = (await client.get("/auth/me", headers=owner_headers)).json()["user"]
    last = await client.patch(f"/admin/staff/{me['id']}", headers=owner_headers, json={"role": "viewer"})
    assert last.status_code == 409


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: httpx.AsyncClient, database: Database
) -> None:
    first_id = await make_staff(database, "o1@example.com", Role.OWNER)
    second_id = await make_staff(database, "o2@example.com", Role.OWNER)
    first = await login_bearer(client, "o1@example.com")
    second = await login_bearer(client, "o2@example.com")
    responses = await asyncio.gather(
        client.patch(f"/admin/staff/{second_id}", headers=first, json={"role": "admin"}),
        client.patch(f"/admin/staff/{first_id}", headers=second, json={"role": "admin"}),
    )
    # The loser either finds itself the last owner (409) or, if the winner committed before its request
    # began, is no longer an owner and may not touch one (403).
    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 403], [200, 409])
    async with database.read() as session:
        owners = await session.scalars(sa.select(StaffUser.id).where(StaffUser.role == Role.OWNER))
        assert len(list(owners)) == 1


async def test_nobody_can_deactivate_themselves(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    me = (await client.get("/auth/me", headers=admin_headers)).json()["user"]
    response = await client.patch(f"/admin/staff/{me['id']}", headers=admin_headers, json={"is_active": False})
    assert response.status_code == 409


async def test_a_role_change_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    support_id = await make_staff(database, "support@example.com", Role.SUPPORT)
    support_headers = await login_bearer(client, "support@example.com")
    assert (await client.post("/_test/partners", headers=support_headers)).status_code == 200
    changed = await client.patch(f"/admin/staff/{support_id}", headers=admin_headers, json={"role": "viewer"})
    assert changed.status_code == 200
    assert (await client.post("/_test/partners", headers=support_headers)).status_code == 403
    assert (await client.get("/_test/ledger", headers=support_headers)).status_code == 200


async def test_unknown_staff_is_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    assert (await client.patch("/admin/staff/999999", headers=admin_headers, json={"name": "x"})).status_code == 404
