"""The last-seen rollups (visitors, buyers) look their known keys up in the unique index, whatever the table's
size or statistics: a flush of clicks or a batch of purchases costs what it carries, not what the table holds."""

from __future__ import annotations

import json
from datetime import date
from typing import cast

import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.rollups import service as rollups
from partners.rollups.models import PartnerVisitor
from partners.settings import Settings
from tests.events.support import make_chain

VISITORS = 20_000


async def test_known_visitors_are_looked_up_in_the_index_not_scanned(database: Database, settings: Settings) -> None:
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL's plans")
    chain = await make_chain(database, settings)
    rows = [{"partner_id": chain.cyd.id, "ip_hash": f"{i:064x}", "last_day": date(2026, 1, 1)} for i in range(VISITORS)]
    async with database.write() as session:
        await session.execute(sa.insert(PartnerVisitor), rows)  # no ANALYZE: statistics as stale as they come
    visitors = cast(sa.Table, PartnerVisitor.__table__)
    _, select_locked = rollups._last_seen_statements(visitors, ("partner_id", "ip_hash"))
    given = json.dumps([{"o": chain.cyd.id, "k": f"{i:064x}", "d": "2026-01-02"} for i in (5, 7, 11)])
    async with database.write() as session:
        plan = "\n".join(await session.scalars(sa.text(f"EXPLAIN {select_locked.text}"), {"given": given}))
        found = (await session.execute(select_locked, {"given": given})).all()
    assert "Seq Scan" not in plan and "Hash" not in plan, plan
    assert "uq_rollup_partner_visitors_partner_id_ip_hash" in plan, plan
    assert [(owner, key, day) for _, owner, key, day in found] == [
        (chain.cyd.id, f"{i:064x}", date(2026, 1, 1)) for i in (5, 7, 11)
    ]  # in the given order: the lock order
