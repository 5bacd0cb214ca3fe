"""`partners jobs list` and `partners jobs replay` against a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from partners.db.session import Database
from partners.jobs.cli import jobs_app
from partners.jobs.service import enqueue
from partners.jobs.worker import run_once
from tests.factories import with_database
from tests.jobs.support import T0, all_jobs

runner = CliRunner()


async def one_dead_one_queued(database: Database) -> None:
    async with database.write() as session:
        await enqueue(session, "test.fail", {}, run_after=T0, max_attempts=1)
        await enqueue(session, "test.signal", {}, run_after=T0.replace(year=2031))
    await run_once(database, worker_id="w", now=T0)


def test_list_shows_jobs_and_filters_by_status(cli_database: str) -> None:
    with_database(cli_database, one_dead_one_queued)

    listed = runner.invoke(jobs_app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "test.fail" in listed.output and "test.signal" in listed.output
    assert "boom" in listed.output  # the last line of the traceback

    dead = runner.invoke(jobs_app, ["list", "--status", "dead"])
    assert dead.exit_code == 0, dead.output
    assert "test.fail" in dead.output and "test.signal" not in dead.output

    done = runner.invoke(jobs_app, ["list", "--status", "done"])
    assert "No done jobs." in done.output


def test_replay_one_and_all_dead(cli_database: str) -> None:
    with_database(cli_database, one_dead_one_queued)
    with_database(cli_database, one_dead_one_queued)
    jobs = with_database(cli_database, all_jobs)
    first_dead = next(job for job in jobs if job.status == "dead")

    replayed = runner.invoke(jobs_app, ["replay", str(first_dead.id)])
    assert replayed.exit_code == 0, replayed.output
    assert f"Job {first_dead.id} (test.fail) is queued again." in replayed.output

    again = runner.invoke(jobs_app, ["replay", str(first_dead.id)])
    assert again.exit_code == 1
    assert "only dead jobs can be replayed" in again.output

    everything = runner.invoke(jobs_app, ["replay", "--all-dead"])
    assert everything.exit_code == 0, everything.output
    assert "Replayed 1 dead job." in everything.output
    statuses = [job.status for job in with_database(cli_database, all_jobs)]
    assert statuses.count("dead") == 0 and statuses.count("queued") == 4


def test_replay_needs_exactly_one_target(cli_database: str) -> None:
    assert runner.invoke(jobs_app, ["replay"]).exit_code == 2
    assert runner.invoke(jobs_app, ["replay", "1", "--all-dead"]).exit_code == 2
    missing = runner.invoke(jobs_app, ["replay", "999999"])
    assert missing.exit_code == 1
    assert "job 999999 does not exist" in missing.output
