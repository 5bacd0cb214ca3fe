"""Purchase events written in batches: group commit.

Each `POST /events/purchase` hands its event to the process's `PurchaseBatcher` and waits for the answer. The
batcher takes every event waiting (up to `max_batch`) and records them with `service.record_purchases` in ONE
unit of work: set-based statements for the whole batch, one commit, the rollup rows and the upline partners'
balance rows written once with the batch's sums instead of once per event. An answer is sent only after its
batch has committed, so what was acknowledged is durable, exactly as for one event alone. While a batch runs,
new events queue for the next one.

Gathering: before a batch starts, it waits — at most `gather_seconds`, 1 ms by default — until as many events
are waiting as the last batch saw callers (its own events and those that came while it ran): the callers it
has just answered are sending their next event. Without the wait, callers that each send their next event
when answered split into two halves taking turns (32 of them on two processes: batches of 8, never 16), and
every batch pays the unit of work's fixed cost (~4-5 ms of CPU on PostgreSQL: session, round trips, commit) for
half the events it could carry (bench/README.md, round 9: 1,000 -> 1,600 events/s at 32 clients). A lone caller
never waits (its last batch saw one caller); the first event after a busy spell waits once, at most
`gather_seconds`; after a failed batch the next one starts at once.

Correctness rules:
- A batch never holds two events with the same external id: the later one waits for the next batch (its claim
  then finds the first one's stored answer, as a replay does).
- Events are recorded in the order of (customer, external id) — the same order in every process — and
  customers are locked in id order, so concurrent batches (other processes, a host retrying an event on
  another server) claim events and lock customers in the same order: no deadlock between them. Events of one
  batch are in flight together, so no arrival order between them is lost.
- An event rejected or failing (`service.EventFailed`: unknown customer, conflicting payload, purchase already
  stored, commission rates that cannot be paid) rolls the whole batch back: that event is then recorded alone,
  in its own unit of work, and its answer or error is its caller's; the others go back to the head of the queue
  for the next batch. Each failure takes one event out, so a batch always ends. A failure no event can be
  blamed for (at commit, a lost connection) records each event of the batch alone.

Measured in bench/ (benchmark 2, bench/README.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from partners.db.session import Database
from partners.events import service
from partners.events.schemas import PurchaseIn
from partners.kit.logging import get_logger

MAX_BATCH = 64
GATHER_SECONDS = 0.001
logger = get_logger(__name__)


def _new_answer() -> asyncio.Future[service.EventResult]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class _Waiting:
    event: PurchaseIn
    now: datetime
    answer: asyncio.Future[service.EventResult] = field(default_factory=_new_answer)


class PurchaseBatcher:
    """One per process. `concurrency` batches may run at once (each on its own connection). One by default, on
    both engines: SQLite has one writer, and on PostgreSQL two at a time per process made batches half the size
    that waited on each other for the same upline balance rows (bench/README.md, round 4: 20 to 21% of pgbench at
    32 clients against 22 to 25% one at a time, 38 to 43% against 45 to 52% at 128)."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = MAX_BATCH,
        concurrency: int = 1,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self.database = database
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.gather_seconds = gather_seconds
        self._queue: deque[_Waiting] = deque()
        self._draining = 0  # drains that will still look at the queue
        self._tasks: set[asyncio.Task[None]] = set()  # held so that a running drain is not garbage-collected
        self._expected = 1  # the callers the last batch saw: the events a batch waits for (`_gather`)
        self._enough = asyncio.Event()  # set when that many are waiting

    async def record(self, event: PurchaseIn, *, now: datetime) -> service.EventResult:
        """The event's answer once its batch has committed; raises the event's error (an `AppError`...)."""
        waiting = _Waiting(event, now)
        self._queue.append(waiting)
        if len(self._queue) >= self._expected:
            self._enough.set()
        if self._draining < self.concurrency:
            self._draining += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await waiting.answer

    async def _drain(self) -> None:
        # A drain stops counting as one in the same step in which it finds the queue empty. Counted until its
        # task's done callback ran, an event queued in between (the last answer's caller sending its next one)
        # found a drain "running" that would never look again, and waited until another event started one.
        try:
            while self._queue:
                await self._gather()
                batch = self._take_batch()
                if not batch:  # another drain took them while this one waited
                    break
                try:
                    await self._record_batch(batch)
                except asyncio.CancelledError:  # the process is stopping: the callers get no answer (a 5xx)
                    for waiting in batch:
                        waiting.answer.cancel()
                    raise
        finally:
            self._draining -= 1

    async def _gather(self) -> None:
        """Wait, at most `gather_seconds`, until as many events are waiting as the last batch saw callers."""
        if len(self._queue) >= self._expected or self.gather_seconds <= 0:
            return
        self._enough.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.gather_seconds):
                await self._enough.wait()

    def _take_batch(self) -> list[_Waiting]:
        """Up to `max_batch` waiting events, one per external id, in (customer, external id) order."""
        batch: list[_Waiting] = []
        seen: set[str] = set()
        held_back: list[_Waiting] = []
        while self._queue and len(batch) < self.max_batch:
            waiting = self._queue.popleft()
            if waiting.event.external_id in seen:
                held_back.append(waiting)
            else:
                seen.add(waiting.event.external_id)
                batch.append(waiting)
        self._queue.extendleft(reversed(held_back))
        batch.sort(key=lambda waiting: (waiting.event.customer, waiting.event.external_id))
        return batch

    async def _record_batch(self, batch: list[_Waiting]) -> None:
        try:
            results = await self._write(batch)
        except service.EventFailed as failed:
            self._expected = 1
            self._queue.extendleft(reversed(batch[: failed.index] + batch[failed.index + 1 :]))
            await self._record_alone(batch[failed.index])
        except Exception:
            self._expected = 1
            logger.warning("a purchase batch failed; recording its events one by one", exc_info=True)
            for waiting in batch:
                await self._record_alone(waiting)
        else:
            self._expected = min(len(batch) + len(self._queue), self.max_batch)
            for waiting, result in zip(batch, results, strict=True):
                _resolve(waiting, result)

    async def _write(self, batch: list[_Waiting]) -> list[service.EventResult]:
        async with self.database.write() as session:
            return await service.record_purchases(session, [(waiting.event, waiting.now) for waiting in batch])

    async def _record_alone(self, waiting: _Waiting) -> None:
        try:
            async with self.database.write() as session:
                result = await service.record_purchase(session, waiting.event, now=waiting.now)
        except Exception as error:
            if not waiting.answer.done():
                waiting.answer.set_exception(error)
        else:
            _resolve(waiting, result)


def _resolve(waiting: _Waiting, result: service.EventResult) -> None:
    if not waiting.answer.done():  # its caller may have gone (a cancelled request)
        waiting.answer.set_result(result)
