from __future__ import annotations

import httpx

from partners.affiliates import service
from partners.audit.service import entries_for
from partners.db.session import Database
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.affiliates.conftest import field_of
from tests.factories import create_partner, partner_headers

Programme = tuple[Program, dict[str, Tier]]


async def publish(client: httpx.AsyncClient, program_id: int, headers: dict[str, str], title: str) -> httpx.Response:
    return await client.post(
        f"/admin/programs/{program_id}/agreements",
        json={"title": title, "body": f"{title} terms"},
        headers=headers,
    )


async def can_earn(database: Database, partner_id: int) -> bool:
    async with database.read() as session:
        return await service.can_earn(session, await service.get_partner(session, partner_id))


async def test_staff_publish_numbered_versions(
    client: httpx.AsyncClient,
    database: Database,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    program: Programme,
) -> None:
    program_id = program[0].id
    assert (await publish(client, program_id, viewer_headers, "Terms")).status_code == 403
    first = await publish(client, program_id, admin_headers, "Terms 2026")
    second = await publish(client, program_id, admin_headers, "Terms 2027")
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert (await publish(client, 999, admin_headers, "Terms")).status_code == 404
    async with database.read() as session:
        audit = await entries_for(session, "program", program_id)
    assert [(entry.action, entry.details["version"]) for entry in audit] == [
        ("agreement.publish", 1),
        ("agreement.publish", 2),
    ]


async def test_can_earn_needs_approval_and_the_current_agreement(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin_headers: dict[str, str],
    program: Programme,
) -> None:
    async with database.write() as session:
        partner = await create_partner(session, program[0], program[1]["starter"])
        pending = await create_partner(session, program[0], program[1]["starter"], status="pending")
        headers = await partner_headers(session, settings, partner)
    assert await can_earn(database, partner.id)  # no agreement in the program yet
    assert not await can_earn(database, pending.id)

    await publish(client, program[0].id, admin_headers, "Terms 2026")
    assert not await can_earn(database, partner.id)
    status = (await client.get("/affiliate/agreement", headers=headers)).json()
    assert (status["current"]["version"], status["accepted"], status["acceptance"]) == (1, False, None)
    assert (await client.get("/affiliate/me", headers=headers)).json()["agreement_required"] is True

    wrong = await client.post("/affiliate/agreement/accept", json={"version": 2}, headers=headers)
    assert wrong.status_code == 422 and field_of(wrong) == "version"
    accepted = await client.post(
        "/affiliate/agreement/accept", json={"version": 1}, headers=headers | {"User-Agent": "Agent/2"}
    )
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["ip"], accepted.json()["user_agent"]) == ("127.0.0.1", "Agent/2")
    assert await can_earn(database, partner.id)
    again = await client.post("/affiliate/agreement/accept", json={"version": 1}, headers=headers)
    assert again.json() == accepted.json()  # the first acceptance is kept
    me = (await client.get("/affiliate/me", headers=headers)).json()
    assert (me["can_earn"], me["agreement_required"]) == (True, False)

    await publish(client, program[0].id, admin_headers, "Terms 2027")
    assert not await can_earn(database, partner.id)
    assert (await client.get("/affiliate/agreement", headers=headers)).json()["accepted"] is False


async def test_accepting_when_there_is_no_agreement_is_422(
    client: httpx.AsyncClient, database: Database, settings: Settings, program: Programme
) -> None:
    async with database.write() as session:
        partner = await create_partner(session, program[0], program[1]["starter"])
        headers = await partner_headers(session, settings, partner)
    status = (await client.get("/affiliate/agreement", headers=headers)).json()
    assert status == {"current": None, "accepted": False, "acceptance": None}
    response = await client.post("/affiliate/agreement/accept", json={"version": 1}, headers=headers)
    assert response.status_code == 422 and field_of(response) == "version"
