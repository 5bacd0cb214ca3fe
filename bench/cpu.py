"""Where a run's CPU goes, per operation and by process kind, read from /proc (Linux): the server's workers,
PostgreSQL's processes (the backends that exited during the run included, through the postmaster's children
times), the load generator (wrk or pgbench: this process's children, py-spy too when profiling) and the machine's
idle share. A figure that cannot be read (not Linux, no local PostgreSQL) is left out (None).

    with cpu.Meter(common.server_pids(server)) as meter:
        result = common.wrk(...)
    meter.per_operation(result.requests)
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class _Snapshot:
    workers: float | None
    postgres: float | None
    children: float
    idle: float | None  # idle and iowait ticks, all cores
    total: float | None  # all ticks, all cores


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (index 1: the parent pid, 11-14: utime, stime,
    cutime, cstime)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return None


def _command(pid: int | str) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _seconds(fields: list[str], *indexes: int) -> float:
    return sum(int(fields[index]) for index in indexes) / TICKS


def _workers(pids: list[int]) -> float | None:
    found = [fields for pid in pids if (fields := _stat_fields(pid)) is not None]
    return sum(_seconds(fields, 11, 12) for fields in found) if found else None


def _postgres() -> float | None:
    """Every PostgreSQL process's CPU, and the postmaster's exited children's (pgbench's backends exit with it)."""
    processes = {}
    for pid in _pids():
        if _command(pid).startswith("postgres") and (fields := _stat_fields(pid)) is not None:
            processes[pid] = fields
    if not processes:
        return None
    total = sum(_seconds(fields, 11, 12) for fields in processes.values())
    postmasters = [fields for fields in processes.values() if int(fields[1]) not in processes]
    return total + sum(_seconds(fields, 13, 14) for fields in postmasters)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir(PROC) if name.isdigit()] if PROC.is_dir() else []


def _machine() -> tuple[float | None, float | None]:
    try:
        ticks = [int(value) for value in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    except (FileNotFoundError, ValueError):
        return None, None
    return float(ticks[3] + ticks[4]), float(sum(ticks))


def _snapshot(worker_pids: list[int], postgres: bool) -> _Snapshot:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle, total = _machine()
    database = _postgres() if postgres else None
    return _Snapshot(_workers(worker_pids), database, children.ru_utime + children.ru_stime, idle, total)


class Meter:
    """CPU of a block of work (a load run the block waits for), by process kind; `postgres`: count PostgreSQL's
    processes (not for the SQLite runs)."""

    def __init__(self, worker_pids: list[int] | None = None, *, postgres: bool = True) -> None:
        self.worker_pids = worker_pids or []
        self.postgres = postgres
        self._before: _Snapshot | None = None
        self._after: _Snapshot | None = None

    def __enter__(self) -> Meter:
        self._before = _snapshot(self.worker_pids, self.postgres)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._after = _snapshot(self.worker_pids, self.postgres)

    def per_operation(self, operations: int) -> dict[str, Any]:
        """Milliseconds of CPU per operation for the workers, PostgreSQL and the load generator; the idle share."""
        before, after = self._before, self._after
        assert before is not None and after is not None, "use the meter as a context manager first"

        def per(start: float | None, end: float | None) -> float | None:
            if start is None or end is None or operations <= 0:
                return None
            return round((end - start) / operations * 1000, 4)

        idle = None
        if before.idle is not None and after.idle is not None and before.total is not None and after.total is not None:
            idle = round((after.idle - before.idle) / max(after.total - before.total, 1.0), 3)
        return {
            "workers_ms": per(before.workers, after.workers),
            "postgres_ms": per(before.postgres, after.postgres),
            "load_generator_ms": per(before.children, after.children),
            "idle": idle,
        }


def describe(share: dict[str, Any], load_generator: str) -> str:
    """'workers 800 µs, PostgreSQL 550 µs, wrk 30 µs, 15% of the cores idle' (what could be read)."""
    names = {"workers_ms": "workers", "postgres_ms": "PostgreSQL", "load_generator_ms": load_generator}
    parts = [f"{name} {share[key] * 1000:,.0f} µs" for key, name in names.items() if share.get(key) is not None]
    if share.get("idle") is not None:
        parts.append(f"{share['idle']:.0%} of the cores idle")
    return ", ".join(parts)
