from __future__ import annotations

from typing import Any

import pytest

from partners.db.session import Database
from partners.tracking.recorder import ClickRecorder
from tests.tracking.conftest import (
    World,
    add_link,
    assert_rollups_match_a_recount,
    click_event,
    clicks_counted,
    eventually,
    stored_clicks,
)


@pytest.mark.parametrize("committed", [False, True], ids=["failed", "answer-lost-after-commit"])
async def test_a_failed_flush_keeps_the_batch_and_the_next_flush_stores_and_counts_each_click_once(
    database: Database, world: World, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    link = await add_link(database, world.alice)
    recorder = ClickRecorder(database)
    for number in range(3):
        recorder.record(click_event(link.id, world.alice.id, number))
    real_insert = recorder._insert

    async def failing_insert(rows: list[dict[str, Any]], *, maybe_stored: bool) -> None:
        if committed:  # the batch is stored, but its commit's answer never arrives
            await real_insert(rows, maybe_stored=maybe_stored)
        raise ConnectionError("database went away")

    monkeypatch.setattr(recorder, "_insert", failing_insert)
    with pytest.raises(ConnectionError):
        await recorder.flush()
    assert recorder.pending == 3
    monkeypatch.undo()
    recorder.record(click_event(link.id, world.alice.id, 3))
    assert await recorder.flush() == 4
    assert recorder.pending == 0
    assert [click.click_id for click in await stored_clicks(database)] == [f"{n:032x}" for n in range(4)]
    assert await clicks_counted(database) == (4, 4)
    await assert_rollups_match_a_recount(database)


async def test_a_retried_batch_never_duplicates_clicks_already_stored(database: Database, world: World) -> None:
    link = await add_link(database, world.alice)
    recorder = ClickRecorder(database)
    recorder.record(click_event(link.id, world.alice.id, 1))
    await recorder.flush()
    recorder.record(click_event(link.id, world.alice.id, 1))  # as if the first commit's answer had been lost
    recorder.record(click_event(link.id, world.alice.id, 2))
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
            recorder.record(click_event(link.id, world.alice.id, number))

        async def written() -> bool:
            return len(await stored_clicks(database)) == 25

        await eventually(written)
        recorder.flush_interval = 3600  # from here on only stop() writes
        for number in range(25, 28):
            recorder.record(click_event(link.id, world.alice.id, number, user_agent=""))
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
        recorder.record(click_event(link.id, world.alice.id, 7))

        async def written() -> bool:
            return len(await stored_clicks(database)) == 1

        await eventually(written)
    finally:
        await recorder.stop()
    assert failures == 2
