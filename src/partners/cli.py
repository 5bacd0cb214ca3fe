"""The `partners` command line."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from partners.db import migrate as migrations
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.jobs.cli import jobs_app
from partners.settings import get_settings

app = typer.Typer(help="Namaskah Partners: affiliate, partner and reseller platform.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
console = Console()
T = TypeVar("T")


def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(create_engine(get_settings().database_url))
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Alembic revision")] = "head") -> None:
    """Upgrade the database schema (SQLite or PostgreSQL, from DATABASE_URL)."""
    migrations.upgrade(get_settings().database_url, revision)
    console.print(f"[green]database at {revision}[/green]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (PostgreSQL only for > 1)")] = 1,
) -> None:
    """Serve the HTTP app with uvicorn (with the in-process job worker unless PARTNERS_EMBEDDED_WORKER=false)."""
    import uvicorn

    get_settings()
    uvicorn.run(
        "partners.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def worker(worker_id: Annotated[str, typer.Option(help="Name in job leases")] = "") -> None:
    """Run a job worker process (run several at once on PostgreSQL)."""
    from partners.jobs.worker import run_worker

    settings = get_settings()
    name = worker_id or f"worker-{secrets.token_hex(3)}"

    async def run(database: Database) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        console.print(f"[green]{name} started[/green]")
        await run_worker(database, settings, worker_id=name, stop_event=stop)

    _with_database(run)


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="Login email")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="Display name")] = "Owner",
    role: Annotated[str, typer.Option(help="owner, admin, finance, support or viewer")] = "owner",
) -> None:
    """Create a staff user."""
    from partners.identity.service import create_staff_user

    async def run(database: Database) -> None:
        async with database.write() as session:
            await create_staff_user(session, email=email, name=name, password=password, role=role)

    _with_database(run)
    console.print(f"[green]created {role} {email}[/green]")


@app.command("rebuild-rollups")
def rebuild_rollups() -> None:
    """Recount the dashboard's rollups from the raw tables, in one transaction (after an upgrade that changes
    what they count, or to repair them)."""
    from partners.rollups import service as rollups

    async def run(database: Database) -> None:
        with Progress(console=console) as progress:
            tables = len(rollups.recount_queries(database.dialect))
            task = progress.add_task("rebuilding the rollups", total=tables)

            def rebuilt(table: str, rows: int) -> None:
                progress.console.print(f"{table}: {rows:,} rows")
                progress.advance(task)

            async with database.write() as session:
                await rollups.rebuild(session, rebuilt)

    _with_database(run)
    console.print("[green]rollups rebuilt[/green]")


@app.command()
def demo() -> None:
    """Load the demo data (idempotent: running it again changes nothing)."""
    from partners.demo import load_demo_data

    summary = _with_database(load_demo_data)
    for line in summary:
        console.print(line)


if __name__ == "__main__":
    app()
