"""Fixtures for the jobs tests; importing `support` registers the test handlers."""

from __future__ import annotations

import asyncio

import pytest

from partners.db.session import Database
from tests.jobs.support import Flaky, Signals, effects_metadata


@pytest.fixture(autouse=True)
def _reset_test_handlers() -> None:
    Flaky.broken = True
    Signals.ran = asyncio.Event()


@pytest.fixture
async def effects(database: Database) -> Database:
    """The database, with an empty `test_job_effects` table for handlers to write to."""
    async with database.engine.begin() as connection:
        await connection.run_sync(effects_metadata.drop_all)
        await connection.run_sync(effects_metadata.create_all)
    return database
