"""The staff queue: filters (status, kind, partner, age, SLA breach), the waiting sort, the hourly alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.db.types import utcnow
from partners.disputes import tasks
from partners.disputes.models import Dispute
from partners.jobs.worker import tick_schedules
from partners.settings import Settings
from tests.disputes.conftest import World
from tests.mail.support import messages_to, plain_text, run_jobs, use_mail_settings

INBOX = "disputes@namaskah.local"


async def open_dispute(client: httpx.AsyncClient, headers: dict[str, str], reference: str) -> int:
    response = await client.post(
        "/affiliate/disputes",
        json={
            "kind": "missing_conversion",
            "order_reference": reference,
            "order_date": "2026-01-05",
            "message": f"{reference} is missing",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def age(database: Database, dispute_id: int, *, opened: timedelta, waiting: timedelta | None) -> None:
    """Move a dispute's clocks into the past, as if it were opened `opened` ago."""
    now = utcnow()
    async with database.write() as session:
        await session.execute(
            sa.update(Dispute)
            .where(Dispute.id == dispute_id)
            .values(created_at=now - opened, awaiting_staff_since=now - waiting if waiting else None)
        )


async def queue(client: httpx.AsyncClient, world: World, **params: Any) -> dict[str, Any]:
    response = await client.get("/admin/disputes", params=params, headers=world.viewer)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


@pytest.fixture
async def disputes(client: httpx.AsyncClient, database: Database, world: World) -> dict[str, int]:
    """fresh: opened now; breached: waiting on staff 50 h (past the 48 h target); answered: opened 100 h ago,
    staff replied; theirs: the other partner's, waiting 60 h."""
    found = {
        "fresh": await open_dispute(client, world.seller_headers, "A-1"),
        "breached": await open_dispute(client, world.seller_headers, "A-2"),
        "answered": await open_dispute(client, world.seller_headers, "A-3"),
        "theirs": await open_dispute(client, world.other_headers, "B-1"),
    }
    reply = await client.post(
        f"/admin/disputes/{found['answered']}/messages",
        json={"body": "Send a receipt"},
        headers=world.support,
    )
    assert reply.status_code == 201
    await age(database, found["breached"], opened=timedelta(hours=50), waiting=timedelta(hours=50))
    await age(database, found["answered"], opened=timedelta(hours=100), waiting=None)
    await age(database, found["theirs"], opened=timedelta(hours=60), waiting=timedelta(hours=60))
    return found


async def test_the_queue_filters_by_breach_status_partner_and_age(
    client: httpx.AsyncClient, world: World, disputes: dict[str, int]
) -> None:
    breached = await queue(client, world, breached="true")
    assert sorted(ids(breached)) == sorted([disputes["breached"], disputes["theirs"]])
    assert all(item["sla"]["breached"] for item in breached["items"])
    assert all(item["sla"]["waiting_on_staff_seconds"] >= 48 * 3600 for item in breached["items"])
    assert sorted(ids(await queue(client, world, breached="false"))) == sorted(
        [disputes["fresh"], disputes["answered"]]
    )
    assert ids(await queue(client, world, status="awaiting_partner")) == [disputes["answered"]]
    assert ids(await queue(client, world, partner_id=world.other.id)) == [disputes["theirs"]]
    assert sorted(ids(await queue(client, world, min_age_hours=55))) == sorted(
        [disputes["answered"], disputes["theirs"]]
    )
    assert ids(await queue(client, world, max_age_hours=1)) == [disputes["fresh"]]
    assert (await queue(client, world, closed="true"))["total"] == 0
    bad = await client.get("/admin/disputes", params={"status": "lost", "sort": "random"}, headers=world.viewer)
    assert bad.status_code == 422
    assert {error["field"] for error in bad.json()["errors"]} == {"status", "sort"}


async def test_the_waiting_sort_puts_the_longest_waiting_on_staff_first(
    client: httpx.AsyncClient, world: World, disputes: dict[str, int]
) -> None:
    page = await queue(client, world, sort="waiting")
    assert ids(page) == [disputes["theirs"], disputes["breached"], disputes["fresh"], disputes["answered"]]
    answered = page["items"][-1]["sla"]
    assert answered["waiting_on_staff_seconds"] is None and answered["breached"] is False
    assert answered["since_last_staff_reply_seconds"] is not None and answered["age_seconds"] >= 100 * 3600
    newest = await queue(client, world, sort="newest", limit=2)
    assert (newest["total"], len(newest["items"])) == (4, 2)
    assert ids(newest)[0] == disputes["fresh"]
    assert ids(await queue(client, world, sort="oldest"))[0] == disputes["answered"]


async def test_a_partner_reply_restarts_the_sla_clock_after_a_staff_answer(
    client: httpx.AsyncClient, world: World, disputes: dict[str, int]
) -> None:
    path = f"/affiliate/disputes/{disputes['answered']}"
    reply = await client.post(f"{path}/messages", json={"body": "Attached"}, headers=world.seller_headers)
    assert reply.status_code == 201
    sla = (await client.get(path, headers=world.seller_headers)).json()["sla"]
    assert sla["breached"] is False and sla["waiting_on_staff_seconds"] is not None
    assert sla["age_seconds"] >= 100 * 3600
    assert disputes["answered"] not in ids(await queue(client, world, breached="true"))


async def test_the_hourly_alert_tells_the_inbox_once_per_breach(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    world: World,
    disputes: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_mail_settings(monkeypatch, settings)
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)
    await run_jobs(database)  # the opening notices
    before = len(messages_to(settings, INBOX))

    await tick_schedules(database, settings)
    await run_jobs(database)
    alerts = messages_to(settings, INBOX)[before:]
    assert len(alerts) == 1
    text = plain_text(alerts[0])
    assert f"dispute #{disputes['breached']}" in text and f"dispute #{disputes['theirs']}" in text
    assert f"dispute #{disputes['fresh']}" not in text

    async with database.write() as session:  # the next hour's run
        await tasks.sla_alerts(session, {"schedule": tasks.SLA_ALERTS, "period": "next"})
    await run_jobs(database)
    assert len(messages_to(settings, INBOX)) == before + 1  # nothing new breached: no second alert
