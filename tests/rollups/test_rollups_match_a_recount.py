"""The dashboard's rollups equal a recount from the raw tables after a random workload that goes through the
real writers: clicks (redirect + recorder, and an ORM bulk insert), signups, purchases dated over several days,
refunds, chargebacks, approvals, rejections, re-assignments, a bulk `update(Commission)` (paid and back),
purchases moved back or refunded in full by a bulk `update(Purchase)`, and changes rolled back in a savepoint
and in a whole transaction."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.audit.service import Actor
from partners.commissions import service as commissions
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.db.types import utcnow
from partners.events.models import Purchase
from partners.rollups import service as rollups
from partners.settings import Settings
from partners.tracking import service as tracking
from partners.tracking.models import Click, Customer, TrackingLink
from partners.tracking.recorder import ClickEvent, ClickRecorder, click_row
from tests.events.support import make_chain
from tests.factories import create_partner

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
STAFF = Actor("staff", "1")


class Workload:
    def __init__(self, app: Any, database: Database, host: dict[str, str], links: list[str], seed: int) -> None:
        self.app = app
        self.database = database
        self.host = host
        self.links = links
        self.random = random.Random(seed)
        self.click_ids: list[str] = []
        self.customers: list[str] = []
        self.purchases: list[str] = []
        self.partner_ids: list[int] = []

    async def request(self, method: str, path: str, ip: str = "198.51.100.1", **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.request(method, path, **kwargs)

    async def click(self) -> None:
        agent = BOT if self.random.random() < 0.2 else BROWSER
        ip = f"203.0.113.{self.random.randint(1, 6)}"
        response = await self.request(
            "GET", f"/r/{self.random.choice(self.links)}", ip=ip, headers={"User-Agent": agent}
        )
        assert response.status_code == 302
        if agent == BROWSER:
            self.click_ids.append(response.headers["x-request-id"])
        if self.random.random() < 0.3:
            await self.recorder.flush()

    @property
    def recorder(self) -> ClickRecorder:
        recorder: ClickRecorder = self.app.state.click_recorder
        return recorder

    async def bulk_clicks(self) -> None:
        """The demo's way: an ORM bulk insert of click rows, some of them days old."""
        rows = []
        for _ in range(self.random.randint(1, 5)):
            event = ClickEvent(
                click_id=secrets.token_hex(16),
                link_id=self.random.choice(self.link_ids),
                partner_id=0,
                occurred_at=utcnow() - timedelta(days=self.random.randint(0, 5)),
                ip_hash=f"{self.random.randint(1, 4):064x}",
                user_agent=self.random.choice((BROWSER, BOT)),
                referrer="",
                country=None,
                previous_click_id=None,
            )
            rows.append(click_row(event))
        async with self.database.write() as session:
            for row in rows:
                row["partner_id"] = await session.scalar(
                    sa.select(TrackingLink.partner_id).where(TrackingLink.id == row["link_id"])
                )
            await session.execute(sa.insert(Click), rows)

    async def signup(self) -> None:
        await self.recorder.flush()
        external_id = f"cust-{len(self.customers)}"
        body: dict[str, Any] = {"external_id": external_id, "email": f"{external_id}@example.com"}
        if self.click_ids and self.random.random() < 0.8:
            body["click_id"] = self.random.choice(self.click_ids)
        response = await self.request("POST", "/events/signup", headers=self.host, json=body)
        assert response.status_code == 201, response.text
        self.customers.append(external_id)

    async def purchase(self) -> None:
        if not self.customers:
            return
        external_id = f"sale-{len(self.purchases)}"
        body = {
            "external_id": external_id,
            "customer": self.random.choice(self.customers),
            "amount": self.random.choice((500, 1999, 10_000)),
            "currency": self.random.choice(("USD", "USD", "EUR")),
            "product": "sms",
            "occurred_at": (utcnow() - timedelta(days=self.random.randint(0, 4), hours=1)).isoformat(),
        }
        response = await self.request("POST", "/events/purchase", headers=self.host, json=body)
        assert response.status_code == 201, response.text
        self.purchases.append(external_id)

    async def refund(self, chargeback: bool) -> None:
        if not self.purchases:
            return
        purchase_id = self.random.choice(self.purchases)
        external_id = f"back-{secrets.token_hex(4)}"
        if chargeback:
            body: dict[str, Any] = {"external_id": external_id, "purchase_id": purchase_id}
            await self.request("POST", "/events/chargeback", headers=self.host, json=body)
            return
        body = {"external_id": external_id, "purchase_id": purchase_id, "amount": self.random.randint(1, 300)}
        await self.request("POST", "/events/refund", headers=self.host, json=body)  # 422 once refunded in full

    async def rewrite_purchase(self) -> None:
        """A purchase moved back a few days (ORM), or refunded in full or un-refunded by a bulk `update(Purchase)`:
        its customer's latest paid day can move back, or the customer stop counting as a buyer."""
        async with self.database.write() as session:
            purchase = await session.scalar(sa.select(Purchase).order_by(sa.func.random()).limit(1))
            if purchase is None:
                return
            choice = self.random.random()
            if choice < 0.4:
                purchase.occurred_at -= timedelta(days=self.random.randint(1, 3))
                return
            refunded = Purchase.amount if choice < 0.8 else 0
            await session.execute(
                sa.update(Purchase).where(Purchase.id == purchase.id).values(refunded_amount=refunded)
            )

    async def some_commission(self, *statuses: str) -> int | None:
        async with self.database.read() as session:
            ids = list(await session.scalars(sa.select(Commission.id).where(Commission.status.in_(statuses))))
        return self.random.choice(ids) if ids else None

    async def approve(self) -> None:
        async with self.database.write() as session:
            if self.random.random() < 0.5:
                await commissions.approve_due_commissions(session, now=utcnow() + timedelta(days=400))
            elif (commission_id := await self.some_commission("pending")) is not None:
                await commissions.approve_now(session, STAFF, commission_id, now=utcnow())

    async def reject(self) -> None:
        commission_id = await self.some_commission("pending", "approved")
        if commission_id is not None:
            async with self.database.write() as session:
                await commissions.reject(session, STAFF, commission_id, reason="test rejection")

    async def pay_and_unpay(self) -> None:
        """Bulk ORM updates of commission statuses, as payouts makes them."""
        async with self.database.write() as session:
            await session.execute(
                sa.update(Commission)
                .where(Commission.status == "approved", Commission.id % 2 == self.random.randint(0, 1))
                .values(status="paid")
                .execution_options(synchronize_session=False)
            )
        if self.random.random() < 0.5:
            async with self.database.write() as session:
                await session.execute(
                    sa.update(Commission)
                    .where(Commission.status == "paid", Commission.id % 3 == 0)
                    .values(status="approved")
                    .execution_options(synchronize_session=False)
                )

    async def reassign(self) -> None:
        if not self.customers:
            return
        external_id = self.random.choice(self.customers)
        async with self.database.write() as session:
            customer = await tracking.find_customer(session, external_id)
            choices = [pid for pid in self.partner_ids if customer is None or pid != customer.partner_id]
            await tracking.reassign_customer(
                session,
                STAFF,
                external_id=external_id,
                partner_id=self.random.choice(choices),
                reason="t",
                now=utcnow(),
            )

    async def rolled_back(self) -> None:
        """Changes in a rolled-back savepoint, and in a rolled-back unit of work, leave the rollups alone."""
        commission_id = await self.some_commission("pending", "approved")
        async with self.database.write() as session:
            if commission_id is not None:
                with pytest.raises(RuntimeError):
                    async with session.begin_nested():
                        commission = await session.get_one(Commission, commission_id)
                        commission.status = "rejected"
                        commission.reversed_amount = commission.amount
                        await session.flush()
                        raise RuntimeError("roll the savepoint back")
            await session.execute(sa.update(Purchase).where(Purchase.id < 0).values(refunded_amount=0))
        with pytest.raises(RuntimeError):
            async with self.database.write() as session:
                purchase = await session.scalar(sa.select(Purchase).limit(1))
                if purchase is not None:
                    purchase.refunded_amount = purchase.amount
                customer = await session.scalar(sa.select(Customer).limit(1))
                if customer is not None:
                    customer.partner_id = None
                await session.flush()
                raise RuntimeError("roll the whole unit of work back")

    async def run(self, steps: int) -> None:
        async with self.database.read() as session:
            self.link_ids = list(await session.scalars(sa.select(TrackingLink.id)))
        actions = (
            (self.click, 30),
            (self.bulk_clicks, 4),
            (self.signup, 10),
            (self.purchase, 20),
            (lambda: self.refund(chargeback=False), 6),
            (lambda: self.refund(chargeback=True), 2),
            (self.approve, 4),
            (self.reject, 3),
            (self.pay_and_unpay, 3),
            (self.reassign, 3),
            (self.rewrite_purchase, 4),
            (self.rolled_back, 2),
        )
        functions = [function for function, _ in actions]
        weights = [weight for _, weight in actions]
        for _ in range(steps):
            await self.random.choices(functions, weights)[0]()
        await self.recorder.flush()


@pytest.mark.parametrize("seed", [1, 2])
async def test_rollups_equal_a_recount_after_a_random_workload(
    app: Any, database: Database, settings: Settings, seed: int
) -> None:
    chain = await make_chain(database, settings)
    async with database.write() as session:
        dev = await create_partner(session, chain.program, chain.tiers["starter"], referral_code="dev")
        for code, partner in (("cyd1", chain.cyd), ("cyd2", chain.cyd), ("dev1", dev), ("ben1", chain.ben)):
            session.add(TrackingLink(partner_id=partner.id, code=code, destination_url="https://namaskah.app/"))
    workload = Workload(app, database, chain.host, ["cyd1", "cyd2", "dev1", "ben1"], seed)
    workload.partner_ids = [chain.ada.id, chain.ben.id, chain.cyd.id, dev.id]
    await workload.run(150)

    async with database.read() as session:
        compared = await rollups.stored_and_recounted(session)
    for table, (stored, recounted) in compared.items():
        assert stored == recounted, (
            f"{table}: stored - recount {stored - recounted}, recount - stored {recounted - stored}"
        )
    assert compared["commissions"][1], "the workload made commissions"
    assert compared["visitors"][1], "the workload made human clicks"


async def test_a_rebuild_gives_the_same_rollups(app: Any, database: Database, settings: Settings) -> None:
    chain = await make_chain(database, settings)
    async with database.write() as session:
        session.add(TrackingLink(partner_id=chain.cyd.id, code="cyd1", destination_url="https://namaskah.app/"))
    workload = Workload(app, database, chain.host, ["cyd1"], seed=3)
    workload.partner_ids = [chain.ada.id, chain.ben.id, chain.cyd.id]
    await workload.run(60)
    async with database.read() as session:
        before = await rollups.stored_and_recounted(session)
    async with database.write() as session:
        await rollups.rebuild(session)
    async with database.read() as session:
        after = await rollups.stored_and_recounted(session)
    assert {name: stored for name, (stored, _) in after.items()} == {
        name: recounted for name, (_, recounted) in before.items()
    }


async def test_the_period_reader_answers_distinct_counts_only_when_nobody_was_seen_later(
    app: Any, database: Database, settings: Settings
) -> None:
    chain = await make_chain(database, settings)
    today = utcnow().date()
    async with database.write() as session:
        link = TrackingLink(partner_id=chain.cyd.id, code="cyd1", destination_url="https://namaskah.app/")
        session.add(link)
        await session.flush()
        rows = [
            click_row(
                ClickEvent(
                    secrets.token_hex(16),
                    link.id,
                    chain.cyd.id,
                    utcnow() - timedelta(days=d),
                    ip,
                    BROWSER,
                    "",
                    None,
                    None,
                )
            )
            for d, ip in ((0, "a" * 64), (1, "a" * 64), (2, "b" * 64), (3, "c" * 64))
        ]
        await session.execute(sa.insert(Click), rows)
    async with database.read() as session:
        whole = await rollups.partner_period(session, chain.cyd.id, today - timedelta(days=2), today)
        earlier = await rollups.partner_period(
            session, chain.cyd.id, today - timedelta(days=3), today - timedelta(days=1)
        )
    assert whole.visitors == 2  # a (today, yesterday) and b
    assert sum(day.clicks for day in whole.days.values()) == 3
    assert earlier.visitors is None  # "a" was seen after the period: the histogram cannot say
