"""Clicks are written in batches, never in the redirect's request.

The redirect hands a `ClickEvent` to `ClickRecorder.record` (a list append) and answers at once. A background task
flushes every `flush_interval` seconds (0.25 s), or as soon as `batch_size` (100) clicks wait, in one transaction
per chunk of up to 1000 rows; so a click is durable well within a second. A flush's Python work pauses the event
loop that answers redirects, so batches stay small: on SQLite (the write on the same process) 100 instead of 500
took the redirect's p99 @32 from 7.8-16 ms to 5.3-8.7 ms at the same throughput (bench/README.md, round 11). A chunk
is one statement (`db.bulk`: on PostgreSQL the rows as one JSON document, `json_to_recordset`; measured in bench/: a
third less CPU and time than a pipelined executemany, and the C JSON encoder does in well under a millisecond what
psycopg's Python array dumpers, one array per column, took a quarter of the worker's CPU for. On SQLite one INSERT
executed for many rows). Both measured far faster than rendering a literal multi-row VALUES list, whose compilation
dominated.

Before the redirect answers, `record` also appends the click to the process's journal (`tracking.journal`): a
crash before the flush loses nothing, the next start writes the journal's clicks. A failed flush keeps its rows and
retries them on the next round (with a growing pause while the database stays down). Rows that may already be
stored — a retry after an unclear failure, clicks taken over from a journal — are inserted skipping click ids
already stored and counted in the rollups only for the rows actually inserted: never a duplicate click, never a
click counted twice. A row the database refuses for its data (its link gone, a value it cannot store) is found by
halving the batch and set aside — counted, logged and kept in the journal folder's `.refused` file — so that it
cannot hold back the clicks after it. `stop()` flushes what is left; if the database cannot be reached, the journal
keeps it for the next start. Each process has its own recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Counter, Gauge
from sqlalchemy import Table
from sqlalchemy.exc import DataError, IntegrityError

from partners.db import bulk
from partners.db.session import Database
from partners.kit.logging import get_logger
from partners.rollups import service as rollups
from partners.tracking.bots import is_bot, warm_up
from partners.tracking.journal import ClickJournal
from partners.tracking.models import Click

FLUSH_INTERVAL_SECONDS = 0.25
BATCH_SIZE = 100
INSERT_CHUNK = 1000  # rows per transaction
MAX_RETRY_PAUSE_SECONDS = 5.0
# A database down for hours must not eat the process's memory: past this many waiting clicks the oldest
# are dropped, loudly (an error log and the partners_clicks_dropped_total counter).
MAX_PENDING = 1_000_000
STOP_ATTEMPTS = 5

USER_AGENT_LENGTH = 500
REFERRER_LENGTH = 1000

logger = get_logger(__name__)
clicks_stored = Counter("partners_clicks_stored", "Clicks written to the database")
clicks_dropped = Counter("partners_clicks_dropped", "Clicks dropped because too many were waiting")
flush_failures = Counter("partners_click_flush_failures", "Click batches that failed to write")
clicks_refused = Counter(
    "partners_clicks_refused", "Clicks the database refused for their data (their link gone, say): set aside"
)
clicks_waiting = Gauge("partners_clicks_waiting", "Clicks recorded but not yet written")


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """A click as the redirect saw it; the bot flag is decided off the request path."""

    click_id: str
    link_id: int
    partner_id: int
    occurred_at: datetime
    ip_hash: str
    user_agent: str
    referrer: str
    country: str | None
    previous_click_id: str | None


_CLICKS: Table = Click.__table__  # type: ignore[assignment]
# The database refuses the rows themselves (a constraint, a value it cannot store): retrying cannot help, unlike a
# lost connection or a lock timeout (OperationalError), which are retried.
REFUSED_ERRORS = (DataError, IntegrityError)


def journal_line(event: ClickEvent) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


def event_of_line(line: bytes) -> ClickEvent | None:
    """None for a line that is not a whole click (a write cut short by a power cut)."""
    try:
        fields = orjson.loads(line)
        fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
        return ClickEvent(**fields)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def click_row(event: ClickEvent) -> dict[str, Any]:
    user_agent = event.user_agent[:USER_AGENT_LENGTH]
    return {
        "click_id": event.click_id,
        "link_id": event.link_id,
        "partner_id": event.partner_id,
        "occurred_at": event.occurred_at,
        "ip_hash": event.ip_hash,
        "user_agent": user_agent,
        "referrer": event.referrer[:REFERRER_LENGTH],
        "country": event.country,
        "is_bot": is_bot(user_agent),
        "previous_click_id": event.previous_click_id,
    }


class ClickRecorder:
    def __init__(
        self,
        database: Database,
        *,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
        journal: ClickJournal | None = None,
    ) -> None:
        self.database = database
        self.journal = journal
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._incoming: list[ClickEvent] = []
        self._unwritten: list[dict[str, Any]] = []  # rows taken for writing, kept until a write succeeds
        self._maybe_stored = 0  # how many of the first `_unwritten` rows a write may already have stored
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pending(self) -> int:
        return len(self._incoming) + len(self._unwritten)

    def record(self, event: ClickEvent) -> None:
        """Called on the hot path: no await; one write to the journal."""
        if self.journal is not None:
            self.journal.append(journal_line(event))
        self._incoming.append(event)
        clicks_waiting.inc()
        if len(self._incoming) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> int:
        """Write every waiting click now; returns how many were written. Raises if the write fails (the
        clicks stay queued for the next flush)."""
        async with self._lock:
            taken, self._incoming = self._incoming, []
            if self.journal is not None:
                self.journal.seal()  # the sealed segments hold exactly the clicks taken so far
            self._unwritten.extend(click_row(event) for event in taken)
            self._drop_overflow()
            written = 0
            while self._unwritten:
                chunk = self._unwritten[:INSERT_CHUNK]
                try:
                    refused = await self._insert_or_set_aside(chunk, maybe_stored=self._maybe_stored > 0)
                except BaseException:
                    self._maybe_stored = len(self._unwritten)  # the failure may have come after the commit
                    raise
                del self._unwritten[: len(chunk)]
                self._maybe_stored = max(0, self._maybe_stored - len(chunk))
                written += len(chunk) - refused
                clicks_stored.inc(len(chunk) - refused)
                clicks_waiting.dec(len(chunk))
            if self.journal is not None:
                self.journal.delete_sealed()
            return written

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        if self.journal is not None:
            self._take_over(self.journal.open())
        await asyncio.to_thread(warm_up)
        self._task = asyncio.create_task(self._run(), name="click-recorder")

    async def stop(self) -> None:
        """Stop the background task and write what is left, retrying a few times before giving up loudly."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        for attempt in range(1, STOP_ATTEMPTS + 1):
            try:
                await self.flush()
                if self.journal is not None:
                    self.journal.close(all_stored=True)
                return
            except Exception as error:
                logger.warning("click flush at shutdown failed", attempt=attempt, error=repr(error))
                await asyncio.sleep(min(0.2 * 2**attempt, MAX_RETRY_PAUSE_SECONDS))
        if self.journal is not None:
            self.journal.close(all_stored=False)
            logger.error(
                "clicks not written at shutdown: kept in the click journal for the next start", clicks=self.pending
            )
        else:
            logger.error("clicks lost at shutdown: the database could not be written", clicks=self.pending)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
                failures = 0
            except Exception as error:
                failures += 1
                flush_failures.inc()
                logger.error("click flush failed; will retry", clicks=self.pending, error=repr(error))
                await self._pause(min(self.flush_interval * 2**failures, MAX_RETRY_PAUSE_SECONDS))

    async def _pause(self, seconds: float) -> None:
        """Sleep between retries, but wake at once for stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def _take_over(self, lines: list[bytes]) -> None:
        """The clicks of journal segments left behind by a process that died: written with the next flush."""
        events = [event_of_line(line) for line in lines]
        unreadable = events.count(None)
        if unreadable:
            logger.error("unreadable click journal lines skipped", lines=unreadable)
        rows = [click_row(event) for event in events if event is not None]
        self._unwritten[:0] = rows
        self._maybe_stored += len(rows)
        clicks_waiting.inc(len(rows))

    async def _insert_or_set_aside(self, rows: list[dict[str, Any]], *, maybe_stored: bool) -> int:
        """Insert the rows; when the database refuses them (`REFUSED_ERRORS`), halve the batch until each row it
        refuses is found alone, and set those aside: one bad click must not hold back every click after it, retried
        forever. Returns how many were set aside. Any other error is raised (the batch is retried)."""
        try:
            await self._insert(rows, maybe_stored=maybe_stored)
            return 0
        except REFUSED_ERRORS as error:
            if len(rows) == 1:
                self._set_aside(rows[0], error)
                return 1
        half = len(rows) // 2
        first = await self._insert_or_set_aside(rows[:half], maybe_stored=maybe_stored)
        return first + await self._insert_or_set_aside(rows[half:], maybe_stored=maybe_stored)

    def _set_aside(self, row: dict[str, Any], error: Exception) -> None:
        clicks_refused.inc()
        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        kept_in: str | None = None
        if self.journal is not None:
            try:
                self.journal.keep_refused(line)
                kept_in = self.journal.refused_path.name
            except OSError as write_error:
                logger.error("refused click not kept in the journal folder", error=repr(write_error))
        logger.error(
            "click refused by the database: set aside, not retried",
            click_id=row["click_id"],
            kept_in=kept_in,
            row=None if kept_in else line.decode(),  # the log is then its only copy
            error=str(getattr(error, "orig", error)),
        )

    async def _insert(self, rows: list[dict[str, Any]], *, maybe_stored: bool) -> None:
        """Click ids already stored are skipped; when some may be (`maybe_stored`), the rollups count only the rows
        the insert returns."""
        dialect = self.database.dialect
        async with self.database.write() as session:
            if maybe_stored:
                insert = bulk.insert(dialect, _CLICKS, rows, skip_conflicts=True, returning=("click_id",))
                inserted = set((await session.execute(insert.statement, insert.parameters)).scalars())
                rows = [row for row in rows if row["click_id"] in inserted]
            else:
                insert = bulk.insert(dialect, _CLICKS, rows, skip_conflicts=True)
                await session.execute(insert.statement, insert.parameters)
            rollups.record_clicks(session.sync_session, rows)  # written with the clicks, at commit

    def _drop_overflow(self) -> None:
        excess = len(self._unwritten) - self.max_pending
        if excess > 0:
            del self._unwritten[:excess]
            self._maybe_stored = max(0, self._maybe_stored - excess)
            clicks_dropped.inc(excess)
            clicks_waiting.dec(excess)
            logger.error("too many clicks waiting for the database: dropped the oldest", dropped=excess)
