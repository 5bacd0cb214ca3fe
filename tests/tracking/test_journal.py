"""The click journal: clicks answered but not yet written survive the death of their process, are written once
by the next one to start, and are never counted twice in the rollups."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from partners.app import create_app
from partners.db.session import Database
from partners.settings import Settings
from partners.tracking.journal import ClickJournal
from partners.tracking.recorder import ClickRecorder, event_of_line, journal_line
from tests.tracking.conftest import (
    BROWSER_UA,
    World,
    add_link,
    assert_rollups_match_a_recount,
    click_event,
    clicks_counted,
    stored_clicks,
)

CLICKS = 40
STARTUP_SECONDS = 60
DATABASE_URL = "db-url"  # the journal only fingerprints it


def journaled_recorder(database: Database, folder: Path) -> ClickRecorder:
    """A recorder that writes only when flushed or stopped, its journal in `folder`."""
    return ClickRecorder(database, flush_interval=3600, journal=ClickJournal(folder, DATABASE_URL))


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.clicks"))


def journal_click_ids(folder: Path) -> list[str]:
    lines = [line for path in segments(folder) for line in path.read_bytes().splitlines()]
    return [found.click_id for found in map(event_of_line, lines) if found is not None]


def journal_failures() -> float:
    return REGISTRY.get_sample_value("partners_click_journal_failures_total") or 0.0


def clicks_refused() -> float:
    return REGISTRY.get_sample_value("partners_clicks_refused_total") or 0.0


async def test_a_click_is_journaled_when_recorded_and_its_segment_deleted_once_stored(
    database: Database, world: World, tmp_path: Path
) -> None:
    link = await add_link(database, world.alice)
    folder = tmp_path / "journal"
    recorder = journaled_recorder(database, folder)
    await recorder.start()
    try:
        for number in range(3):
            recorder.record(click_event(link.id, world.alice.id, number))
        assert journal_click_ids(folder) == [f"{n:032x}" for n in range(3)]
        assert await recorder.flush() == 3
        assert journal_click_ids(folder) == []
        live = segments(folder)
        assert len(live) == 1  # the live segment, for the next clicks
        assert await recorder.flush() == 0
        assert segments(folder) == live  # an idle flush starts no new segment
    finally:
        await recorder.stop()
    assert segments(folder) == []
    assert len(await stored_clicks(database)) == 3


@pytest.mark.parametrize("refusal", ["link-gone", "nul-character"])
async def test_clicks_the_database_refuses_are_set_aside_and_the_rest_of_their_batch_stored(
    database: Database, database_url: str, world: World, tmp_path: Path, refusal: str
) -> None:
    if refusal == "nul-character" and database_url.startswith("sqlite"):
        pytest.skip("SQLite stores a NUL character; PostgreSQL's text cannot")
    link = await add_link(database, world.alice)
    folder = tmp_path / "journal"
    recorder = journaled_recorder(database, folder)
    await recorder.start()
    refused_before = clicks_refused()
    try:
        for number in range(5):
            click = click_event(link.id, world.alice.id, number)
            if number in (1, 3) and refusal == "link-gone":
                click = dataclasses.replace(click, link_id=link.id + 1000)
            elif number in (1, 3):
                click = dataclasses.replace(click, user_agent="Mozilla\x00/5.0")
            recorder.record(click)
        assert await recorder.flush() == 3
        assert recorder.pending == 0
        recorder.record(click_event(link.id, world.alice.id, 5))  # the next batch is not held back
        assert await recorder.flush() == 1
    finally:
        await recorder.stop()
    assert [click.click_id for click in await stored_clicks(database)] == [f"{n:032x}" for n in (0, 2, 4, 5)]
    assert await clicks_counted(database) == (4, 4)
    await assert_rollups_match_a_recount(database)
    assert clicks_refused() - refused_before == 2
    assert segments(folder) == []
    kept = [
        orjson.loads(line)
        for line in (folder / f"{ClickJournal(folder, DATABASE_URL).prefix}.refused").read_bytes().splitlines()
    ]
    assert [row["click_id"] for row in kept] == [f"{n:032x}" for n in (1, 3)]


async def test_a_live_processs_segment_is_not_taken_over_and_a_closed_one_is(
    database: Database, world: World, tmp_path: Path
) -> None:
    link = await add_link(database, world.alice)
    folder = tmp_path / "journal"
    first = ClickJournal(folder, DATABASE_URL)
    assert first.open() == []
    first.append(journal_line(click_event(link.id, world.alice.id, 1)))

    second = ClickJournal(folder, DATABASE_URL)  # another process (flock locks are per open file, even in one process)
    assert second.open() == []  # the first is alive: its segment is locked
    other_database = ClickJournal(folder, "another-db-url")
    assert other_database.open() == []

    first.close(all_stored=False)  # as at a shutdown that could not reach the database: the file stays
    assert journal_click_ids(folder) == [f"{1:032x}"]
    third = ClickJournal(folder, DATABASE_URL)
    recovered = third.open()
    assert [found.click_id for found in map(event_of_line, recovered) if found is not None] == [f"{1:032x}"]
    another_again = ClickJournal(folder, "another-db-url")
    assert another_again.open() == []  # never another database's clicks
    for journal in (second, third, other_database, another_again):
        journal.close(all_stored=True)
    assert segments(folder) == []


async def test_clicks_left_by_a_process_that_died_are_written_once_at_the_next_start(
    database: Database, world: World, tmp_path: Path
) -> None:
    link = await add_link(database, world.alice)
    folder = tmp_path / "journal"
    dead = ClickJournal(folder, DATABASE_URL)
    dead.open()
    for number in range(5):
        dead.append(journal_line(click_event(link.id, world.alice.id, number)))
    dead.close(all_stored=False)
    (folder / f".{dead.prefix}-1-cut.tmp").touch()  # a process that died while starting a segment
    # Two of them were stored before the process died (its commit went through, the journal was not yet deleted).
    early = ClickRecorder(database)
    for number in range(2):
        early.record(click_event(link.id, world.alice.id, number))
    await early.flush()
    assert await clicks_counted(database) == (2, 2)

    recorder = journaled_recorder(database, folder)
    await recorder.start()
    assert recorder.pending == 5
    await recorder.stop()
    assert sorted(click.click_id for click in await stored_clicks(database)) == [f"{n:032x}" for n in range(5)]
    assert await clicks_counted(database) == (5, 5)
    await assert_rollups_match_a_recount(database)
    assert list(folder.iterdir()) == []


async def test_an_unreadable_journal_line_is_skipped_and_the_rest_written(
    database: Database, world: World, tmp_path: Path
) -> None:
    link = await add_link(database, world.alice)
    folder = tmp_path / "journal"
    folder.mkdir()
    whole = journal_line(click_event(link.id, world.alice.id, 9))
    (folder / f"{ClickJournal(folder, DATABASE_URL).prefix}-1-dead.clicks").write_bytes(whole + whole[:40])  # cut short
    recorder = journaled_recorder(database, folder)
    await recorder.start()
    await recorder.stop()
    assert [click.click_id for click in await stored_clicks(database)] == [f"{9:032x}"]


async def test_a_full_disk_keeps_the_click_in_memory_and_says_so(
    database: Database, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await add_link(database, world.alice)
    recorder = journaled_recorder(database, tmp_path / "journal")
    await recorder.start()

    def no_space(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = journal_failures()
    monkeypatch.setattr(os, "write", no_space)  # the journal's append; undone before anything else writes
    recorder.record(click_event(link.id, world.alice.id, 1))
    monkeypatch.undo()
    assert journal_failures() == before + 1
    await recorder.stop()
    assert [click.click_id for click in await stored_clicks(database)] == [f"{1:032x}"]


async def test_a_segment_that_cannot_be_started_keeps_the_current_one_until_a_later_flush(
    database: Database, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await add_link(database, world.alice)
    folder = tmp_path / "journal"
    recorder = journaled_recorder(database, folder)
    journal = recorder.journal
    await recorder.start()
    recorder.record(click_event(link.id, world.alice.id, 1))

    def no_new_segment() -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(journal, "_new_segment", no_new_segment)
    assert await recorder.flush() == 1  # the database write goes on
    recorder.record(click_event(link.id, world.alice.id, 2))
    assert journal_click_ids(folder) == [f"{1:032x}", f"{2:032x}"]  # the one segment holds both
    monkeypatch.undo()
    assert await recorder.flush() == 1
    assert journal_click_ids(folder) == []
    await recorder.stop()
    assert list(folder.iterdir()) == []
    assert [click.click_id for click in await stored_clicks(database)] == [f"{1:032x}", f"{2:032x}"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_until_up(http: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    """The bound only stops a broken run; it asserts no speed."""
    for _ in range(STARTUP_SECONDS * 10):
        assert server.poll() is None, "the server exited at start-up"
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the server never answered")


def _start_server(settings: Settings, folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PARTNERS_", "DATABASE_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key,
        PARTNERS_ENV="test",
        PARTNERS_EMBEDDED_WORKER="false",
        PARTNERS_CLICK_JOURNAL_DIR=str(folder),
        PARTNERS_CLICK_FLUSH_SECONDS="60",  # nothing is written before the kill
    )
    command = [sys.executable, "-m", "uvicorn", "partners.app:create_app", "--factory", "--port", str(port)]
    command += ["--log-level", "warning"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_clicks_answered_by_a_server_killed_before_its_flush_are_stored_by_the_next_start(
    database: Database, world: World, settings: Settings, tmp_path: Path
) -> None:
    await add_link(database, world.alice, code="killed")
    folder = tmp_path / "journal"
    port = _free_port()
    server = _start_server(settings, folder, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"User-Agent": BROWSER_UA}, timeout=30
        ) as http:
            await _wait_until_up(http, server)
            responses = await asyncio.gather(*(http.get("/r/killed") for _ in range(CLICKS)))
        assert [response.status_code for response in responses] == [302] * CLICKS
        answered = {response.headers["x-request-id"] for response in responses}  # the click id
    finally:
        server.send_signal(signal.SIGKILL)  # no shutdown: the recorder never flushes
        server.wait(timeout=30)
    assert await stored_clicks(database) == []
    assert set(journal_click_ids(folder)) == answered

    app = create_app(settings.model_copy(update={"click_journal_dir": str(folder)}), database)
    async with app.router.lifespan_context(app):
        pass  # the start takes the dead server's segment over, the stop writes it
    assert {click.click_id for click in await stored_clicks(database)} == answered
    assert await clicks_counted(database) == (CLICKS, CLICKS)
    await assert_rollups_match_a_recount(database)
    assert segments(folder) == []
