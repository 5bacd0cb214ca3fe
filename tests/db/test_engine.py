"""`db.engine` on PostgreSQL: statements psycopg prepares are planned with their parameters at each execution
(no generic plan made while a table was small and kept as it grows), and a URL's own `options` still apply."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from partners.db.engine import create_engine
from tests.conftest import IN_CI, PG_URL, prepare_postgres

PREPARED_AFTER = 5  # psycopg's prepare_threshold: from the 6th execution on, a statement runs prepared
PREPARED_RUNS = 10  # PostgreSQL would try a generic plan from the 6th of them on


@pytest.fixture
def postgres_url() -> str:
    error = prepare_postgres()
    if error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")
    return PG_URL


async def test_prepared_statements_are_never_run_on_a_generic_plan(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    lookup = sa.text("SELECT count(*) FROM host_events WHERE id = :id")
    try:
        async with engine.connect() as conn:
            for number in range(PREPARED_AFTER + PREPARED_RUNS):
                await conn.execute(lookup, {"id": number})
            plans = (
                await conn.execute(
                    sa.text(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                        "WHERE statement LIKE 'SELECT count(*) FROM host_events%'"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    generic, custom = plans
    assert (generic, custom) == (0, PREPARED_RUNS)


async def test_the_urls_own_options_still_apply(postgres_url: str) -> None:
    url = sa.make_url(postgres_url).update_query_dict({"options": "-c statement_timeout=4321"})
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            timeout = (await conn.execute(sa.text("SHOW statement_timeout"))).scalar_one()
            mode = (await conn.execute(sa.text("SHOW plan_cache_mode"))).scalar_one()
    finally:
        await engine.dispose()
    assert timeout == "4321ms"
    assert mode == "force_custom_plan"
