"""The partner dashboard on a known data set: every number exact, each partner seeing only its own."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from partners.db.session import Database
from partners.identity.roles import Role
from partners.identity.service import create_staff_user, start_session
from partners.rollups import service as rollups
from partners.settings import Settings
from partners.tracking.models import Click, TrackingLink
from tests.events.support import Chain, make_chain, problem_fields
from tests.factories import partner_headers

TODAY = datetime.now(UTC).date()
DAY_A = TODAY - timedelta(days=3)
DAY_B = TODAY - timedelta(days=2)
DAY_C = TODAY - timedelta(days=1)
EARLIER = TODAY - timedelta(days=10)
PERIOD = {"from": DAY_A.isoformat(), "to": DAY_C.isoformat()}


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


async def add_clicks(database: Database, chain: Chain, partner: str, clicks: list[tuple[date, str, bool]]) -> None:
    """clicks: (day, visitor ip hash, is_bot)."""
    owner = getattr(chain, partner)
    async with database.write() as session:
        link = TrackingLink(
            partner_id=owner.id,
            code=f"{partner}-{secrets.token_hex(3)}",
            destination_url="https://namaskah.app/",
        )
        session.add(link)
        await session.flush()
        for index, (day, ip_hash, is_bot) in enumerate(clicks):
            session.add(
                Click(
                    click_id=secrets.token_hex(16),
                    link_id=link.id,
                    partner_id=owner.id,
                    occurred_at=at(day, 9 + index % 10),
                    ip_hash=ip_hash,
                    user_agent="Googlebot/2.1" if is_bot else "Mozilla/5.0",
                    is_bot=is_bot,
                )
            )


async def event(client: httpx.AsyncClient, chain: Chain, kind: str, **body: Any) -> None:
    response = await client.post(f"/events/{kind}", json=body, headers=chain.host)
    assert response.status_code == 201, response.text


async def purchase(
    client: httpx.AsyncClient,
    chain: Chain,
    external_id: str,
    customer: str,
    amount: int,
    currency: str,
    day: date,
) -> None:
    await event(
        client,
        chain,
        "purchase",
        external_id=external_id,
        customer=customer,
        amount=amount,
        currency=currency,
        product="sms",
        occurred_at=at(day).isoformat(),
    )


@pytest.fixture
async def chain(client: httpx.AsyncClient, database: Database, settings: Settings) -> Chain:
    """The known data set (cyd's numbers, period DAY_A..DAY_C, in the comments)."""
    chain = await make_chain(database, settings)
    await add_clicks(
        database,
        chain,
        "cyd",
        [
            (DAY_A, "ip1", False),
            (DAY_A, "ip1", False),
            (DAY_A, "ip2", False),
            (DAY_A, "bot", True),
            (DAY_B, "ip3", False),
            (DAY_B, "ip1", False),
            (DAY_B, "ip4", False),
            (DAY_B, "bot", True),
            (DAY_B, "bot", True),
            (EARLIER, "ip9", False),  # outside the period
            (TODAY, "ip9", False),  # outside the period
        ],
    )  # in the period: 6 human clicks, 4 unique (ip1..ip4), 3 bot clicks
    await add_clicks(database, chain, "ben", [(DAY_A, "ip5", False)] * 4)
    for customer, code, day in (
        ("c1", "cyd", DAY_A),
        ("c2", "cyd", DAY_B),
        ("c3", "cyd", EARLIER),
        ("c4", "ben", DAY_A),
    ):
        await event(
            client,
            chain,
            "signup",
            external_id=customer,
            email=f"{customer}@example.org",
            referral_code=code,
            occurred_at=at(day, 8).isoformat(),
        )  # cyd: 2 signups in the period (c1, c2)
    await purchase(client, chain, "p1", "c1", 10_000, "USD", DAY_A)  # cyd 500
    await purchase(client, chain, "p2", "c1", 5_000, "EUR", DAY_B)  # cyd 250
    await purchase(client, chain, "p3", "c2", 3_000, "USD", DAY_B)  # cyd 150
    await event(client, chain, "refund", external_id="r3", purchase_id="p3", amount=1_000)  # cyd -50
    await purchase(client, chain, "p4", "c3", 2_000, "USD", DAY_B)  # cyd 100
    await purchase(client, chain, "p5", "c1", 7_000, "USD", EARLIER)  # cyd 350, outside the period
    await purchase(client, chain, "p6", "c4", 4_000, "USD", DAY_A)  # ben's own customer: nothing for cyd
    return chain


async def test_the_dashboard_numbers_are_exact(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain
) -> None:
    async with database.write() as session:
        headers = await partner_headers(session, settings, chain.cyd)
    response = await client.get("/affiliate/dashboard", params=PERIOD, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["partner_id"] == chain.cyd.id
    assert body["period"] == {"from": DAY_A.isoformat(), "to": DAY_C.isoformat(), "days": 3}
    assert (body["clicks"], body["unique_clicks"], body["bot_clicks"]) == (6, 4, 3)
    assert body["signups"] == 2
    assert body["customers"] == 3  # c1, c2, c3 bought in the period
    assert body["conversion_rate_bps"] == 7_500  # 3 customers / 4 unique clicks
    # level-1 net earnings per human click: USD (500 + 150 - 50 + 100) / 6 = 116.67 -> 117;
    # EUR 250 / 6 = 41.67 -> 42
    assert body["epc"] == [{"currency": "EUR", "amount": 42}, {"currency": "USD", "amount": 117}]
    assert body["revenue"] == [
        {"currency": "EUR", "purchases": 1, "gross": 5_000, "refunded": 0, "net": 5_000},
        {"currency": "USD", "purchases": 3, "gross": 15_000, "refunded": 1_000, "net": 14_000},
    ]
    assert body["commissions"] == [
        {"status": "pending", "currency": "EUR", "count": 1, "amount": 250, "reversed": 0, "net": 250},
        {"status": "pending", "currency": "USD", "count": 3, "amount": 750, "reversed": 50, "net": 700},
    ]
    assert body["balances"] == [  # the ledger now, whatever the period: p5's 350 is pending too
        {"currency": "EUR", "available": 0, "pending": 250},
        {"currency": "USD", "available": 0, "pending": 1_050},
    ]
    assert body["tier"]["key"] == "starter"
    assert (
        body["rates"]["level1_rate_bps"],
        body["rates"]["level2_rate_bps"],
        body["rates"]["level3_rate_bps"],
    ) == (
        500,
        200,
        100,
    )
    progress = body["progress"]
    assert progress["next_tier"]["key"] == "pro"
    assert progress["window_days"] == 90
    assert progress["eligible"] is False
    assert progress["requirements"] == [  # 90 days: USD net 10000 + 2000 + 2000 + 7000; customers c1, c2, c3
        {"metric": "revenue", "current": 21_000, "required": 500_000, "met": False},
        {"metric": "active_customers", "current": 3, "required": 10, "met": False},
    ]
    assert body["series"] == [
        {"date": DAY_A.isoformat(), "clicks": 3, "conversions": 1, "earnings": {"USD": 500}},
        {"date": DAY_B.isoformat(), "clicks": 3, "conversions": 3, "earnings": {"EUR": 250, "USD": 200}},
        {"date": DAY_C.isoformat(), "clicks": 0, "conversions": 0, "earnings": {}},
    ]


async def test_a_customer_whose_purchases_are_all_refunded_is_not_a_paying_customer(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain
) -> None:
    async with database.write() as session:
        headers = await partner_headers(session, settings, chain.cyd)
    later = {"from": DAY_B.isoformat(), "to": DAY_C.isoformat()}  # from the last-seen histogram
    first_day = {"from": DAY_A.isoformat(), "to": DAY_A.isoformat()}  # c2 bought after it: from the purchases

    async def customers(period: dict[str, str]) -> tuple[int, int]:
        """The period's customers, and the active customers of the tier progress (90 days)."""
        body = (await client.get("/affiliate/dashboard", params=period, headers=headers)).json()
        return body["customers"], body["progress"]["requirements"][1]["current"]

    assert await customers(later) == (3, 3)  # c1 (p2), c2 (p3, partly refunded), c3 (p4)
    assert await customers(first_day) == (1, 3)  # c1 (p1)
    await event(client, chain, "chargeback", external_id="cb2", purchase_id="p2")  # c1's DAY_B purchase
    assert await customers(later) == (2, 3)  # c1 last paid on DAY_A now
    assert await customers(first_day) == (1, 3)
    await event(client, chain, "chargeback", external_id="cb1", purchase_id="p1")
    await event(client, chain, "chargeback", external_id="cb5", purchase_id="p5")  # c1 has paid nothing now
    assert await customers(later) == (2, 2)
    assert await customers(first_day) == (0, 2)
    async with database.read() as session:
        compared = await rollups.stored_and_recounted(session)
    assert compared["buyers"][0] == compared["buyers"][1]
    assert compared["days"][0] == compared["days"][1]


async def test_each_partner_sees_only_its_own_numbers(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain
) -> None:
    async with database.write() as session:
        headers = await partner_headers(session, settings, chain.ben)
    body = (await client.get("/affiliate/dashboard", params=PERIOD, headers=headers)).json()
    assert body["partner_id"] == chain.ben.id
    assert (body["clicks"], body["unique_clicks"], body["signups"], body["customers"]) == (4, 1, 1, 1)
    assert body["revenue"] == [{"currency": "USD", "purchases": 1, "gross": 4_000, "refunded": 0, "net": 4_000}]
    # ben: level 1 on p6 (5% of 4000 = 200), level 2 on cyd's p1 (200), p2 (EUR 100), p3 (60 - 20), p4 (40)
    assert body["commissions"] == [
        {"status": "pending", "currency": "EUR", "count": 1, "amount": 100, "reversed": 0, "net": 100},
        {"status": "pending", "currency": "USD", "count": 4, "amount": 500, "reversed": 20, "net": 480},
    ]
    assert body["epc"] == [{"currency": "USD", "amount": 50}]  # level 1 only: 200 / 4 clicks
    # The admin route is for staff: a partner's session does not open it, even for its own id.
    for partner_id in (chain.cyd.id, chain.ben.id):
        denied = await client.get(f"/admin/partners/{partner_id}/dashboard", headers=headers)
        assert denied.status_code == 401
        assert denied.headers["content-type"] == "application/problem+json"


async def test_staff_read_any_partners_dashboard(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain
) -> None:
    async with database.write() as session:
        viewer = await create_staff_user(
            session,
            email="viewer@example.com",
            name="Viewer",
            password="viewer-password-123",
            role=Role.VIEWER,
        )
        token, _csrf = await start_session(
            session, settings, subject_kind="staff", subject_id=viewer.id, ip="127.0.0.1", user_agent="tests"
        )
        partner = await partner_headers(session, settings, chain.cyd)
    staff = {"Authorization": f"Bearer {token}"}
    as_staff = await client.get(f"/admin/partners/{chain.cyd.id}/dashboard", params=PERIOD, headers=staff)
    as_partner = await client.get("/affiliate/dashboard", params=PERIOD, headers=partner)
    assert as_staff.status_code == 200, as_staff.text
    assert as_staff.json() == as_partner.json()
    missing = await client.get("/admin/partners/999999/dashboard", headers=staff)
    assert missing.status_code == 404
    assert problem_fields(missing) == ["partner_id"]


async def test_periods_and_their_errors(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain
) -> None:
    async with database.write() as session:
        headers = await partner_headers(session, settings, chain.cyd)
    default = (await client.get("/affiliate/dashboard", headers=headers)).json()
    assert default["period"]["to"] == TODAY.isoformat()
    assert default["period"]["days"] == 30
    assert len(default["series"]) == 30
    assert (default["clicks"], default["bot_clicks"]) == (8, 3)  # EARLIER and TODAY are inside the 30 days
    week = (await client.get("/affiliate/dashboard", params={"period": "7d"}, headers=headers)).json()
    assert (week["period"]["from"], week["period"]["days"]) == ((TODAY - timedelta(days=6)).isoformat(), 7)
    assert week["clicks"] == 7  # without EARLIER
    bad: list[tuple[dict[str, str], str]] = [
        ({"period": "2w"}, "period"),
        ({"from": DAY_C.isoformat(), "to": DAY_A.isoformat()}, "from"),
        ({"from": "2020-01-01", "to": "2022-01-01"}, "from"),
        ({"from": "yesterday"}, "from"),
    ]
    for params, field in bad:
        response = await client.get("/affiliate/dashboard", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert problem_fields(response) == [field], params
    assert (await client.get("/affiliate/dashboard")).status_code == 401
