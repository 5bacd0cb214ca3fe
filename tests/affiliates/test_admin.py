from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.audit.service import entries_for
from partners.db.session import Database
from partners.identity.models import AuthSession
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.affiliates.conftest import field_of, partner_bearer, register
from tests.factories import create_program
from tests.mail.support import messages_to, plain_text, run_jobs

Programme = tuple[Program, dict[str, Tier]]


async def test_staff_list_pending_applications(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], program: Programme
) -> None:
    first = await register(client)
    second = await register(client, email="bo@example.com", name="Bo")
    response = await client.get("/admin/applications", headers=viewer_headers)
    assert response.status_code == 200, response.text
    assert [(item["id"], item["email"]) for item in response.json()] == [
        (first["id"], "asha@example.com"),
        (second["id"], "bo@example.com"),
    ]
    assert (await client.get("/admin/applications")).status_code == 401


async def test_a_viewer_cannot_decide(
    client: httpx.AsyncClient, database: Database, viewer_headers: dict[str, str], program: Programme
) -> None:
    partner = await register(client)
    for action in ("approve", "reject", "suspend", "ban", "reinstate"):
        response = await client.post(
            f"/admin/partners/{partner['id']}/{action}", json={"reason": "because"}, headers=viewer_headers
        )
        assert response.status_code == 403, action
    async with database.read() as session:
        stored = await session.get(Partner, partner["id"])
        assert stored is not None and stored.status == "pending"
        assert await entries_for(session, "partner", partner["id"]) == []


async def test_approval_is_audited_and_emailed(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin_headers: dict[str, str],
    program: Programme,
) -> None:
    partner = await register(client)
    response = await client.post(f"/admin/partners/{partner['id']}/approve", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["approved_at"] is not None
    async with database.read() as session:
        [entry] = await entries_for(session, "partner", partner["id"])
    me = (await client.get("/auth/me", headers=admin_headers)).json()
    assert (entry.actor_kind, entry.actor_id, entry.action) == (
        "staff",
        str(me["user"]["id"]),
        "partner.approve",
    )
    assert entry.details == {"from": "pending", "to": "approved", "reason": ""}
    await run_jobs(database)
    assert "Your Namaskah partner application is approved" in [
        message["Subject"] for message in messages_to(settings, "asha@example.com")
    ]


async def test_rejection_needs_a_reason_which_is_kept_audited_and_emailed(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin_headers: dict[str, str],
    program: Programme,
) -> None:
    partner = await register(client)
    url = f"/admin/partners/{partner['id']}/reject"
    for body in ({}, {"reason": "   "}):
        missing = await client.post(url, json=body, headers=admin_headers)
        assert missing.status_code == 422
        assert field_of(missing) == "reason"
    response = await client.post(url, json={"reason": "Website is a parked domain"}, headers=admin_headers)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == (
        "rejected",
        "Website is a parked domain",
    )
    async with database.read() as session:
        [entry] = await entries_for(session, "partner", partner["id"])
    assert entry.action == "partner.reject"
    assert entry.details == {"from": "pending", "to": "rejected", "reason": "Website is a parked domain"}
    await run_jobs(database)
    rejection = messages_to(settings, "asha@example.com")[-1]
    assert rejection["Subject"] == "Your Namaskah partner application"
    assert "Website is a parked domain" in plain_text(rejection)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["approve", "suspend", "reinstate", "ban", "reinstate"], "approved"),
        (["reject", "ban"], "banned"),
        (["ban", "reinstate", "suspend"], "suspended"),
    ],
)
async def test_allowed_transitions(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    program: Programme,
    path: list[str],
    expected: str,
) -> None:
    partner = await register(client)
    for action in path:
        response = await client.post(
            f"/admin/partners/{partner['id']}/{action}", json={"reason": "checked"}, headers=admin_headers
        )
        assert response.status_code == 200, (action, response.text)
    assert response.json()["status"] == expected


@pytest.mark.parametrize(
    ("setup", "refused"),
    [
        ([], "suspend"),
        ([], "reinstate"),
        (["approve"], "approve"),
        (["approve"], "reject"),
        (["reject"], "approve"),
        (["reject"], "reinstate"),
        (["ban"], "ban"),
        (["approve", "suspend"], "suspend"),
    ],
)
async def test_wrong_transitions_are_409(
    client: httpx.AsyncClient,
    database: Database,
    admin_headers: dict[str, str],
    program: Programme,
    setup: list[str],
    refused: str,
) -> None:
    partner = await register(client)
    for action in setup:
        done = await client.post(
            f"/admin/partners/{partner['id']}/{action}", json={"reason": "checked"}, headers=admin_headers
        )
        assert done.status_code == 200
    response = await client.post(
        f"/admin/partners/{partner['id']}/{refused}", json={"reason": "again"}, headers=admin_headers
    )
    assert response.status_code == 409
    assert field_of(response) == "status"
    async with database.read() as session:
        assert len(await entries_for(session, "partner", partner["id"])) == len(setup)


async def test_unknown_partner_is_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/admin/partners/999/approve", headers=admin_headers)
    assert response.status_code == 404


async def test_a_ban_ends_the_partners_sessions(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], program: Programme
) -> None:
    partner = await register(client)
    await client.post(f"/admin/partners/{partner['id']}/approve", headers=admin_headers)
    headers = await partner_bearer(client, "asha@example.com")
    assert (await client.get("/affiliate/me", headers=headers)).status_code == 200
    banned = await client.post(f"/admin/partners/{partner['id']}/ban", json={"reason": "fraud"}, headers=admin_headers)
    assert banned.status_code == 200
    assert (await client.get("/affiliate/me", headers=headers)).status_code == 401
    async with database.read() as session:
        live = await session.scalars(
            sa.select(AuthSession).where(AuthSession.subject_kind == "partner", AuthSession.revoked_at.is_(None))
        )
        assert list(live) == []


async def test_applications_filter_by_program(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin_headers: dict[str, str],
    program: Programme,
) -> None:
    async with database.write() as session:
        await create_program(session, settings, slug="other", is_default=False)
    await register(client)
    other = await register(client, email="bo@example.com", program="other")
    response = await client.get(
        "/admin/applications", params={"program_id": other["program_id"]}, headers=admin_headers
    )
    assert [item["id"] for item in response.json()] == [other["id"]]
