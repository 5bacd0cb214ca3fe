"""The programs admin API: programs, tiers (validated), overrides and tier assignment, audited; roles."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from partners.audit.service import entries_for
from partners.db.session import Database
from partners.identity.roles import Role
from partners.programs.models import TierChange
from partners.settings import Settings
from tests.factories import create_partner, create_program, staff_headers


@pytest.fixture
async def admin(database: Database, settings: Settings) -> dict[str, str]:
    async with database.write() as session:
        return await staff_headers(session, settings, Role.ADMIN)


@pytest.fixture
async def viewer(database: Database, settings: Settings) -> dict[str, str]:
    async with database.write() as session:
        return await staff_headers(session, settings, Role.VIEWER)


TIER: dict[str, Any] = {
    "key": "vip",
    "name": "VIP",
    "rank": 5,
    "base_rate_bps": 1000,
    "ceiling_rate_bps": 1500,
    "level2_rate_bps": 300,
    "bonus_steps": [{"threshold": 100_000, "rate_bps": 1200}],
    "commission_duration": "months",
    "commission_duration_value": 12,
    "promotion_rule": {"window_days": 30, "min_revenue": 1_000_000},
}


def error_field(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["errors"][0]["field"])


async def test_admin_creates_and_edits_a_program_with_its_default_tiers(
    client: httpx.AsyncClient, database: Database, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    body = {"slug": "resellers", "name": "Resellers", "currency": "eur", "new_partner_extra_hold_days": 7}
    created = await client.post("/admin/programs", json=body, headers=admin)
    assert created.status_code == 201, created.text
    program = created.json()
    assert (program["currency"], program["new_partner_extra_hold_days"], program["is_default"]) == (
        "EUR",
        7,
        False,
    )

    duplicate = await client.post("/admin/programs", json=body, headers=admin)
    assert duplicate.status_code == 409 and error_field(duplicate) == "slug"
    forbidden = await client.post("/admin/programs", json={**body, "slug": "other"}, headers=viewer)
    assert forbidden.status_code == 403

    edited = await client.patch(f"/admin/programs/{program['id']}", json={"cookie_window_days": 60}, headers=admin)
    assert edited.status_code == 200 and edited.json()["cookie_window_days"] == 60
    tiers = await client.get(f"/admin/programs/{program['id']}/tiers", headers=viewer)
    assert [tier["key"] for tier in tiers.json()] == ["starter", "pro", "enterprise", "whitelabel"]
    listed = await client.get("/admin/programs", headers=viewer)
    assert [p["slug"] for p in listed.json()] == ["resellers"]

    async with database.read() as session:
        actions = [entry.action for entry in await entries_for(session, "program", program["id"])]
    assert actions == ["program.created", "program.updated"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_rate_bps": 1600}, "ceiling_rate_bps"),
        ({"bonus_steps": [{"threshold": 1, "rate_bps": 1600}]}, "bonus_steps.0.rate_bps"),
        ({"bonus_steps": [{"threshold": 1, "rate_bps": 900}]}, "bonus_steps.0.rate_bps"),
        (
            {"commission_duration": "purchases", "commission_duration_value": None},
            "commission_duration_value",
        ),
        ({"level3_rate_bps": 10_001}, "level3_rate_bps"),
        ({"promotion_rule": {"min_revenue": -1}}, "promotion_rule.min_revenue"),
    ],
)
async def test_tiers_are_validated(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: dict[str, str],
    change: dict[str, Any],
    field: str,
) -> None:
    async with database.write() as session:
        program, _tiers = await create_program(session, settings)
    response = await client.post(f"/admin/programs/{program.id}/tiers", json={**TIER, **change}, headers=admin)
    assert response.status_code == 422, response.text
    assert error_field(response) == field


async def test_admin_creates_and_edits_a_tier(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: dict[str, str],
    viewer: dict[str, str],
) -> None:
    async with database.write() as session:
        program, _tiers = await create_program(session, settings)
    created = await client.post(f"/admin/programs/{program.id}/tiers", json=TIER, headers=admin)
    assert created.status_code == 201, created.text
    tier = created.json()
    assert tier["promotion_rule"] == {"window_days": 30, "min_revenue": 1_000_000}
    assert (tier["commission_duration"], tier["commission_duration_value"]) == ("months", 12)

    # an edit is checked against the merged tier: the existing bonus step (1200) lies above a 1100 ceiling
    bad = await client.patch(f"/admin/tiers/{tier['id']}", json={"ceiling_rate_bps": 1100}, headers=admin)
    assert bad.status_code == 422 and error_field(bad) == "bonus_steps.0.rate_bps"
    good = await client.patch(
        f"/admin/tiers/{tier['id']}",
        json={"ceiling_rate_bps": 1300, "commission_duration": "lifetime"},
        headers=admin,
    )
    assert good.status_code == 200, good.text
    assert (good.json()["ceiling_rate_bps"], good.json()["commission_duration_value"]) == (1300, None)
    denied = await client.patch(f"/admin/tiers/{tier['id']}", json={"hold_days": 1}, headers=viewer)
    assert denied.status_code == 403
    async with database.read() as session:
        actions = [entry.action for entry in await entries_for(session, "tier", tier["id"])]
    assert actions == ["tier.created", "tier.updated"]


async def test_overrides_and_manual_tier_assignment_are_audited(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: dict[str, str],
    viewer: dict[str, str],
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        _other_program, other_tiers = await create_program(session, settings, slug="other", is_default=False)
    url = f"/admin/partners/{partner.id}"

    assert (await client.get(f"{url}/rate-override", headers=viewer)).status_code == 404
    body = {"base_rate_bps": 1800, "level2_rate_bps": 500, "reason": "negotiated"}
    assert (await client.put(f"{url}/rate-override", json=body, headers=viewer)).status_code == 403
    set_ = await client.put(f"{url}/rate-override", json=body, headers=admin)
    assert set_.status_code == 200, set_.text
    rates = (await client.get(f"{url}/rates", headers=viewer)).json()
    assert (rates["level1_rate_bps"], rates["level2_rate_bps"], rates["level3_rate_bps"]) == (1800, 500, 100)
    empty = await client.put(f"{url}/rate-override", json={"reason": "nothing"}, headers=admin)
    assert empty.status_code == 422 and error_field(empty) == "base_rate_bps"
    cleared = await client.delete(f"{url}/rate-override", params={"reason": "ended"}, headers=admin)
    assert cleared.status_code == 204
    assert (await client.get(f"{url}/rates", headers=viewer)).json()["level1_rate_bps"] == 500

    wrong = await client.put(f"{url}/tier", json={"tier_id": other_tiers["pro"].id}, headers=admin)
    assert wrong.status_code == 422 and error_field(wrong) == "tier_id"
    assigned = await client.put(
        f"{url}/tier", json={"tier_id": tiers["whitelabel"].id, "reason": "brand"}, headers=admin
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["reason"] == "admin"
    again = await client.put(f"{url}/tier", json={"tier_id": tiers["whitelabel"].id}, headers=admin)
    assert again.status_code == 409
    history = (await client.get(f"{url}/tier-history", headers=viewer)).json()
    assert [(h["from_tier_id"], h["to_tier_id"], h["reason"]) for h in history] == [
        (tiers["starter"].id, tiers["whitelabel"].id, "admin")
    ]
    assert (await client.get("/admin/partners/999999/tier-history", headers=viewer)).status_code == 404

    async with database.read() as session:
        actions = [entry.action for entry in await entries_for(session, "partner", partner.id)]
        changes = await session.get(TierChange, history[0]["id"])
    assert actions == ["partner.rate_override_set", "partner.rate_override_cleared", "partner.tier_assigned"]
    assert changes is not None and changes.metrics == {"note": "brand"}
