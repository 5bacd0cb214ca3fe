"""The click journal: a click is appended to a local file before its 302 is sent, so a crash of the server
process between the answer and the recorder's next write (up to 250 ms later) loses no click.

Each server process appends to a segment file of its own in the journal folder, holding an exclusive `flock` on
it while it lives. When the recorder takes the waiting clicks to write them, it seals the segment and starts a new
one; sealed segments are deleted once every click in them is stored. A recorder starting up takes over every
segment whose lock is free — left behind by a process that died, or that could not reach the database at
shutdown — and writes its clicks again (click ids already stored are skipped, and not counted twice).

A click costs one `orjson` encoding and one `write` system call (~1.7 µs, bench/README.md, round 14). The kernel
holds what was written when the process dies; the journal is not fsynced per click, so a power cut or a kernel
crash within the operating system's writeback delay can still lose the clicks of the last quarter second.

Segment names start with a fingerprint of the database URL: deployments sharing a folder by mistake never write
each other's clicks. Linux and macOS only (`fcntl`), as uvloop is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter

from partners.kit.logging import get_logger

SUFFIX = ".clicks"
REFUSED_SUFFIX = ".refused"
logger = get_logger(__name__)
journal_failures = Counter(
    "partners_click_journal_failures", "Clicks that could not be appended to the journal (kept in memory only)"
)


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    appended: bool = False

    def delete(self) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        finally:
            os.close(self.fd)  # releases the lock, after the file is gone

    def close(self) -> None:
        os.close(self.fd)


class ClickJournal:
    """Lines of bytes, each one click (the recorder encodes and decodes them)."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.prefix = hashlib.sha256(database_url.encode()).hexdigest()[:12]
        self._current: _Segment | None = None
        self._sealed: list[_Segment] = []

    def open(self) -> list[bytes]:
        """Start a segment of this process's own; returns the lines of the segments left behind, now ours until
        `delete_sealed` (they count as sealed)."""
        if self._current is not None:
            raise RuntimeError("the click journal is already open")
        self.folder.mkdir(parents=True, exist_ok=True)
        recovered = [line for segment in self._take_over_orphans() for line in _lines(segment)]
        self._current = self._new_segment()
        return recovered

    def append(self, line: bytes) -> None:
        """Before the click's 302 is sent. A failed write (a full disk) is counted and logged, not raised: the
        click still waits in memory for the next flush, as it did before the journal."""
        segment = self._current
        if segment is None:
            return
        segment.appended = True
        try:
            if os.write(segment.fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as error:
            journal_failures.inc()
            logger.error("click journal write failed; the click is kept in memory only", error=repr(error))
            with contextlib.suppress(OSError):
                os.write(segment.fd, b"\n")  # ends a line cut short: the next click's line stays readable

    def seal(self) -> None:
        """The clicks appended so far are being written: start a new segment for the next ones."""
        if self._current is None or not self._current.appended:
            return
        try:
            fresh = self._new_segment()
        except OSError as error:  # the current segment then goes on to cover the next flush too: nothing is lost
            logger.error("click journal could not start a new segment", error=repr(error))
            return
        self._sealed.append(self._current)
        self._current = fresh

    def delete_sealed(self) -> None:
        """Every click of the sealed segments is stored."""
        while self._sealed:
            self._sealed.pop().delete()

    @property
    def refused_path(self) -> Path:
        return self.folder / f"{self.prefix}{REFUSED_SUFFIX}"

    def keep_refused(self, line: bytes) -> None:
        """A click the database refused (`ClickRecorder`): kept in `<fingerprint>.refused` for an operator to read —
        never taken over, never retried. One `write` with `O_APPEND`: processes sharing the folder don't interleave."""
        fd = os.open(self.refused_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def close(self, *, all_stored: bool) -> None:
        """At shutdown. With clicks not stored, the files stay for the next process to take over."""
        if self._current is not None:
            self._sealed.append(self._current)
            self._current = None
        if all_stored:
            self.delete_sealed()
            return
        for segment in self._sealed:
            segment.close()
        self._sealed.clear()

    def _new_segment(self) -> _Segment:
        # Created under a temporary name and locked before it gets its segment name, so that no other process's
        # take-over ever sees it unlocked.
        name = f"{self.prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        temporary, path = self.folder / f".{name}.tmp", self.folder / f"{name}{SUFFIX}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, path)
        except OSError:
            _Segment(temporary, fd).delete()
            raise
        return _Segment(path, fd)

    def _take_over_orphans(self) -> list[_Segment]:
        for path in self.folder.glob(f".{self.prefix}-*.tmp"):  # a process died before naming its new segment
            if (segment := _lock(path)) is not None:
                segment.delete()
        taken = []
        for path in sorted(self.folder.glob(f"{self.prefix}-*{SUFFIX}")):
            if (segment := _lock(path)) is not None:
                self._sealed.append(segment)
                taken.append(segment)
        return taken


def _lock(path: Path) -> _Segment | None:
    """The file, locked; None if a live process holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # deleted by its owner meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # a live process's segment
        os.close(fd)
        return None
    if os.fstat(fd).st_nlink == 0:  # deleted by its owner between our open and our lock: all stored
        os.close(fd)
        return None
    return _Segment(path, fd)


def _lines(segment: _Segment) -> list[bytes]:
    with open(segment.fd, "rb", closefd=False) as file:
        lines = file.read().splitlines()
    if lines:  # a process that died between flushes leaves an empty segment: nothing to say
        logger.warning(
            "clicks taken over from a click journal left behind", segment=segment.path.name, clicks=len(lines)
        )
    return lines
