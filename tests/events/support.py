"""Helpers for the host events, dashboard and scenario tests: a 3-level chain, host keys, counts, balances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.commissions import accounts
from partners.db.session import Database
from partners.ledger import service as ledger
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.factories import create_partner, create_program, host_headers


@dataclass
class Chain:
    """ada recruited ben, ben recruited cyd: a sale by cyd's customer pays cyd (level 1), ben (2), ada (3)."""

    program: Program
    tiers: dict[str, Tier]
    ada: Partner
    ben: Partner
    cyd: Partner
    host: dict[str, str]


async def make_chain(database: Database, settings: Settings, **program_fields: Any) -> Chain:
    async with database.write() as session:
        program, tiers = await create_program(session, settings, **program_fields)
        starter = tiers["starter"]
        ada = await create_partner(session, program, starter, email="ada@example.com", referral_code="ada")
        ben = await create_partner(session, program, starter, email="ben@example.com", parent=ada, referral_code="ben")
        cyd = await create_partner(session, program, starter, email="cyd@example.com", parent=ben, referral_code="cyd")
        host = await host_headers(session, settings, "events:write")
    return Chain(program, tiers, ada, ben, cyd, host)


def problem_fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [error["field"] for error in response.json().get("errors", [])]


async def count(database: Database, model: type[Any]) -> int:
    async with database.read() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def earnings(database: Database, partner: Partner, currency: str) -> tuple[int, int]:
    """(earnings_pending, earnings_available) posted balances of a partner in one currency."""
    async with database.write() as session:
        pending = await accounts.earnings_pending_account(session, partner.id, currency)
        available = await accounts.earnings_available_account(session, partner.id, currency)
        return (
            (await ledger.account_balance(session, pending.id)).posted,
            (await ledger.account_balance(session, available.id)).posted,
        )


async def commission_expense(database: Database, currency: str) -> int:
    """The platform's commission_expense balance (negative: what the platform owes or paid partners)."""
    async with database.write() as session:
        account = await accounts.commission_expense_account(session, currency)
        return (await ledger.account_balance(session, account.id)).posted
