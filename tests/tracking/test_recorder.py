from __future__ import annotations

from typing import Any

import pytest

from partners.db.session import Database
from partners.db.types import utcnow
from partners.tracking.recorder import ClickEvent, ClickRecorder
from tests.tracking.conftest import BROWSER_UA, World, add_link, eventually, stored_clicks


def event(link_id: int, partner_id: int, number: int, user_agent: str = BROWSER_UA) -> ClickEvent:
    return ClickEvent(
        click_id=f"{number:032x}",
        link_id=link_id,
        partner_id=partner_id,
        occurred_at=utcnow(),
        ip_hash="a" * 64,
        user_agent=user_agent,
        referrer="",
        country=None,
        previous_click_id=None,
    )


async def test_a_failed_flush_keeps_the_batch_and_the_next_flush_writes_it(
    database: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await add_link(database, world.alice)
    recorder = ClickRecorder(database)
    for number in range(3):
        recorder.record(event(link.id, world.alice.id, number))

    real_insert = recorder._insert
    failing = True

    async def flaky_insert(rows: list[dict[str, Any]], *, maybe_stored: bool) -> None:
        if failing:
            raise ConnectionError("database went away")
        await real_insert(rows, maybe_stored=maybe_stored)

    monkeypatch.setattr(recorder, "_insert", flaky_insert)
    with pytest.raises(ConnectionError):
        await recorder.flush()
    assert recorder.pending == 3
    recorder.record(event(link.id, world.alice.id, 3))
    failing = False
    assert await recorder.flush() == 4
    assert recorder.pending == 0
    assert [click.click_id for click in await stored_clicks(database)] == [f"{n:032x}" for n in range(4)]


async def test_a_retried_batch_never_duplicates_clicks_already_stored(database: Database, world: World) -> None:
    link = await add_link(database, world.alice)
    recorder = ClickRecorder(database)
    recorder.record(event(link.id, world.alice.id, 1))
    await recorder.flush()
    recorder.record(event(link.id, world.alice.id, 1))  # as if the first commit's answer had been lost
    recorder.record(event(link.id, world.alice.id, 2))
    assert await recorder.flush() == 2
    assert len(await stored_clicks(database)) == 2


async def test_the_background_task_writes_without_an_explicit_flush_and_stop_writes_the_rest(
    database: Database, world: World
) -> None:
    link = await add_link(database, world.alice)
    recorder = ClickRecorder(database, batch_size=10)
    await recorder.start()
    try:
        for number in range(25):
            recorder.record(event(link.id, world.alice.id, number))

        async def written() -> bool:
            return len(await stored_clicks(database)) == 25

        await eventually(written)
        recorder.flush_interval = 3600  # from here on only stop() writes
        for number in range(25, 28):
            recorder.record(event(link.id, world.alice.id, number, user_agent=""))
    finally:
        await recorder.stop()
    clicks = await stored_clicks(database)
    assert len(clicks) == 28
    assert [click.is_bot for click in clicks[25:]] == [True, True, True]  # no user agent: not a browser
    assert recorder.pending == 0


async def test_the_background_task_survives_a_failing_database(
    database: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await add_link(database, world.alice)
    recorder = ClickRecorder(database, flush_interval=0.01)
    real_insert = recorder._insert
    failures = 0

    async def insert_failing_twice(rows: list[dict[str, Any]], *, maybe_stored: bool) -> None:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise ConnectionError("database went away")
        await real_insert(rows, maybe_stored=maybe_stored)

    monkeypatch.setattr(recorder, "_insert", insert_failing_twice)
    await recorder.start()
    try:
        recorder.record(event(link.id, world.alice.id, 7))

        async def written() -> bool:
            return len(await stored_clicks(database)) == 1

        await eventually(written)
    finally:
        await recorder.stop()
    assert failures == 2
