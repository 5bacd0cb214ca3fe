"""Small builders for tests: programs with the default tiers, partners, logins, host API keys.

They write rows directly (not through the domain services) so every domain's tests can use them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity.roles import Role
from partners.identity.service import create_api_key, create_staff_user, start_session
from partners.programs.defaults import default_tiers
from partners.programs.models import Program, Tier
from partners.settings import Settings


def ledger_account_row(owner: str, currency: str = "USD", *, posted: int = 0, created_at: datetime) -> dict[str, Any]:
    """A `ledger_accounts` row with every column given, for `db.bulk` statements."""
    return {
        "owner": owner,
        "kind": "pending",
        "currency": currency,
        "may_go_negative": False,
        "kept_as_sum": False,
        "posted": posted,
        "pending_debits": 0,
        "pending_credits": 0,
        "created_at": created_at,
    }


async def create_program(
    session: AsyncSession, settings: Settings, *, slug: str = "main", **fields: Any
) -> tuple[Program, dict[str, Tier]]:
    values: dict[str, Any] = {
        "name": "Main program",
        "currency": "USD",
        "is_default": True,
        "allowed_destination_hosts": ["namaskah.app", "www.namaskah.app"],
    }
    values.update(fields)
    program = Program(slug=slug, **values)
    session.add(program)
    await session.flush()
    tiers = {spec["key"]: Tier(program_id=program.id, **spec) for spec in default_tiers(settings)}
    session.add_all(tiers.values())
    await session.flush()
    return program, tiers


async def create_partner(
    session: AsyncSession,
    program: Program,
    tier: Tier,
    *,
    email: str | None = None,
    parent: Partner | None = None,
    status: str = "approved",
    **fields: Any,
) -> Partner:
    suffix = secrets.token_hex(4)
    partner = Partner(
        program_id=program.id,
        tier_id=tier.id,
        parent_id=parent.id if parent else None,
        status=status,
        email=email or f"partner-{suffix}@example.com",
        name=fields.pop("name", f"Partner {suffix}"),
        referral_code=fields.pop("referral_code", f"ref{suffix}"),
        email_verified_at=utcnow(),
        approved_at=utcnow() if status == "approved" else None,
        **fields,
    )
    session.add(partner)
    await session.flush()
    return partner


async def partner_headers(session: AsyncSession, settings: Settings, partner: Partner) -> dict[str, str]:
    """A bearer token for the partner's API calls."""
    token, _csrf = await start_session(
        session, settings, subject_kind="partner", subject_id=partner.id, ip="127.0.0.1", user_agent="tests"
    )
    return {"Authorization": f"Bearer {token}"}


async def host_headers(session: AsyncSession, settings: Settings, *scopes: str) -> dict[str, str]:
    """A host API key with the given scopes (default: every host scope)."""
    _key, raw = await create_api_key(
        session,
        settings,
        name="host",
        scopes=list(scopes or ("events:write", "partners:read", "partners:write")),
        created_by_id=None,
    )
    return {"Authorization": f"Bearer {raw}"}


async def staff_headers(session: AsyncSession, settings: Settings, role: Role) -> dict[str, str]:
    """A bearer token of a new staff user with `role`."""
    user = await create_staff_user(
        session,
        email=f"{role.value}-{secrets.token_hex(3)}@example.com",
        name=role.value,
        password="correct horse battery staple",
        role=role,
    )
    token, _csrf = await start_session(
        session, settings, subject_kind="staff", subject_id=user.id, ip="127.0.0.1", user_agent="tests"
    )
    return {"Authorization": f"Bearer {token}"}


T = TypeVar("T")


def with_database(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on a database of its own, from synchronous code (a CLI test: the command runs its own loop)."""

    async def run() -> T:
        database = Database(create_engine(database_url))
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())
