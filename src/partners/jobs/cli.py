"""`partners jobs ...`: look at the outbox and replay dead jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.engine import create_engine
from partners.db.session import Database
from partners.jobs.models import Job, JobStatus
from partners.jobs.service import list_jobs, replay_all_dead, replay_job
from partners.kit.errors import AppError
from partners.settings import get_settings

T = TypeVar("T")

jobs_app = typer.Typer(help="Background jobs: list the outbox, replay dead jobs.", no_args_is_help=True)
console = Console()


@jobs_app.command("list")
def list_command(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many of the newest jobs.")] = 50,
) -> None:
    """The newest jobs, newest first."""

    async def load(session: AsyncSession) -> list[Job]:
        return await list_jobs(session, status=status, limit=limit)

    jobs = _run(load, write=False)
    if not jobs:
        console.print("No jobs." if status is None else f"No {status} jobs.")
        return
    console.print(_jobs_table(jobs))


@jobs_app.command("replay")
def replay_command(
    job_id: Annotated[int | None, typer.Argument(help="The dead job to replay.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Replay every dead job.")] = False,
) -> None:
    """Send a dead job (or all of them) back to the queue with fresh attempts."""
    if (job_id is None) == (not all_dead):
        raise typer.BadParameter("give either a JOB_ID or --all-dead")
    if all_dead:
        count = _run(replay_all_dead, write=True)
        console.print(f"Replayed {count} dead job{'s' if count != 1 else ''}.")
        return
    assert job_id is not None

    async def replay(session: AsyncSession) -> Job:
        return await replay_job(session, job_id)

    job = _run(replay, write=True)
    console.print(f"Job {job.id} ({job.name}) is queued again.")


def _run(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
    try:
        return asyncio.run(_in_unit_of_work(work, write=write))
    except AppError as error:
        console.print(f"[red]{error.detail}[/red]")
        raise typer.Exit(1) from None


async def _in_unit_of_work(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
    database = Database(create_engine(get_settings().database_url))
    try:
        if write:
            async with database.write() as session:
                return await work(session)
        async with database.read() as session:
            return await work(session)
    finally:
        await database.dispose()


def _jobs_table(jobs: list[Job]) -> Table:
    table = Table("id", "name", "status", "attempts", "run after", "finished", "last error")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.name,
            job.status,
            f"{job.attempts}/{job.max_attempts}",
            f"{job.run_after:%Y-%m-%d %H:%M:%S}",
            f"{job.finished_at:%Y-%m-%d %H:%M:%S}" if job.finished_at else "",
            _last_line(job.last_error),
        )
    return table


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""
