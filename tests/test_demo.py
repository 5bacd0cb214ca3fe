"""`partners demo`: idempotent, consistent with the ledger, and the dashboards answer with real numbers."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.demo import ADMIN_EMAIL, ADMIN_PASSWORD, PARTNER_PASSWORD, load_demo_data
from partners.events.models import HostEvent, Purchase, Refund
from partners.identity.models import ApiKey, StaffUser
from partners.ledger.models import LedgerEntry, LedgerTransaction
from partners.settings import Settings
from partners.tracking.models import Click, Customer, TrackingLink

COUNTED = (
    StaffUser,
    ApiKey,
    Partner,
    TrackingLink,
    Click,
    Customer,
    Purchase,
    Refund,
    Commission,
    HostEvent,
    LedgerTransaction,
    LedgerEntry,
)


async def counts(database: Database) -> dict[str, int]:
    async with database.read() as session:
        return {
            model.__name__: int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
            for model in COUNTED
        }


async def test_demo_loads_once_and_the_dashboards_have_numbers(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    first = await load_demo_data(database, settings)
    loaded = await counts(database)
    second = await load_demo_data(database, settings)
    assert await counts(database) == loaded

    assert first[0].startswith("Demo data loaded")
    assert second[0] == "Demo data: already loaded, nothing changed."
    key_line = next(line for line in first if line.startswith("Host API key (shown once"))
    raw_key = key_line.rsplit(" ", 1)[1]
    assert raw_key.startswith("npk_")
    assert any("exists already" in line for line in second)
    assert not any(raw_key in line for line in second)
    assert loaded["ApiKey"] == loaded["StaffUser"] == 1
    assert loaded["Partner"] == 6
    assert 1_000 <= loaded["Click"] <= 5_000
    assert loaded["Purchase"] > 50 and loaded["Refund"] > 0 and loaded["Commission"] > loaded["Purchase"]
    async with database.read() as session:
        stored = await session.scalar(sa.select(ApiKey.key_hash))
        currencies = set(await session.scalars(sa.select(Purchase.currency).distinct()))
        products = set(await session.scalars(sa.select(Purchase.product).distinct()))
        statuses = set(await session.scalars(sa.select(Commission.status).distinct()))
        bots = await session.scalar(sa.select(sa.func.count()).where(Click.is_bot))
        per_currency = (
            await session.execute(
                sa.select(LedgerEntry.currency, sa.func.sum(LedgerEntry.amount)).group_by(LedgerEntry.currency)
            )
        ).all()
    assert stored != raw_key
    assert currencies == {"USD", "EUR"}
    assert products == {"sms", "whatsapp", "voice", "rental", "subscription", "credits"}
    assert {"pending", "approved", "reversed"} <= statuses
    assert bots
    assert all(total == 0 for _currency, total in per_currency)

    # the printed logins work, and ada (top of the chain) sees real numbers
    staff = await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert staff.status_code == 200, staff.text
    login = await client.post("/affiliate/login", json={"email": "ada@example.com", "password": PARTNER_PASSWORD})
    assert login.status_code == 200, login.text
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    dashboard: dict[str, Any] = (
        await client.get("/affiliate/dashboard", params={"period": "90d"}, headers=headers)
    ).json()
    assert dashboard["clicks"] > 0 and dashboard["unique_clicks"] > 0 and dashboard["bot_clicks"] > 0
    assert dashboard["signups"] > 0 and dashboard["customers"] > 0
    assert {row["currency"] for row in dashboard["revenue"]} == {"USD", "EUR"}
    levels_paid = {row["status"] for row in dashboard["commissions"]}
    assert "approved" in levels_paid
    assert any(balance["available"] > 0 for balance in dashboard["balances"])
    assert sum(day["clicks"] for day in dashboard["series"]) == dashboard["clicks"]
