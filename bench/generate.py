"""The large history for the dashboard benchmarks, written in bulk (COPY on PostgreSQL, executemany on SQLite).

    python -m bench.generate --engine postgresql            # into a fresh partners_bench database
    python -m bench.generate --engine sqlite --scale 0.1    # a tenth of it, for a quick look

One partner (the "main" one) has 1,000,000 clicks, 100,000 customers and 100,000 purchases over 400 days;
1,000 other partners around it have a little history each (some are its sub-affiliates, two are its upline,
so its commissions come at all three levels). Everything a sale leaves behind is there and consistent:
purchases (some refunded), commissions at three levels with their statuses, and the ledger (each sale's
commission transaction, reversals, approvals after the hold; balances equal to the sum of their entries). The
data is seeded: the same on every run, dates moving with today.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Json
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from bench import common
from partners.affiliates.models import Partner
from partners.commissions.accounts import (
    COMMISSION_EXPENSE,
    EARNINGS_AVAILABLE,
    EARNINGS_PENDING,
    PLATFORM_OWNER,
    partner_owner,
)
from partners.commissions.models import Commission
from partners.commissions.rules import reversed_for, split_commissions
from partners.db.base import Base
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.events.models import Purchase, Refund
from partners.identity import service as identity
from partners.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from partners.programs import service as programs
from partners.programs.models import Tier
from partners.rollups import service as rollups
from partners.settings import Settings
from partners.tracking.models import Click, Customer, TrackingLink

SEED = 20_261_124
CHUNK = 20_000
HOLD_DAYS = 30
MAIN_PARTNER_ID = 1
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
BOT_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
REFERRERS = ("", "https://www.youtube.com/", "https://t.co/", "https://www.reddit.com/")
COUNTRIES = ("US", "IN", "GB", "DE", "BR", None)
AMOUNTS = (500, 1000, 2000, 4999, 9900, 19900)
PRODUCTS = ("sms", "whatsapp", "voice", "rental", "credits")


@dataclass(frozen=True)
class Profile:
    main_clicks: int = 1_000_000
    main_customers: int = 100_000
    main_purchases: int = 100_000
    main_links: int = 50
    main_subaffiliates: int = 50
    others: int = 1_000
    other_clicks: int = 200
    other_customers: int = 20
    other_purchases: int = 20
    other_links: int = 2
    days: int = 400
    visitor_share: float = 0.6  # distinct visitors per click
    bot_share: float = 0.03
    refund_share: float = 0.04
    eur_share: float = 0.05

    def scaled(self, scale: float) -> Profile:
        def at_least_one(value: int) -> int:
            return max(1, int(value * scale))

        return Profile(
            main_clicks=at_least_one(self.main_clicks),
            main_customers=at_least_one(self.main_customers),
            main_purchases=at_least_one(self.main_purchases),
            others=max(3, int(self.others * min(1.0, scale * 10))),
        )


@dataclass
class Generated:
    """What was written, for the benchmarks and their checks."""

    main_partner_id: int
    partners: int
    links: list[str]
    main_links: list[str]
    clicks: int
    customers: int
    purchases: int
    commissions: int
    transactions: int
    entries: int
    seconds: float = 0.0
    other_customer_ids: list[str] = field(default_factory=list)


# --- writers -------------------------------------------------------------------------------------------


class Writer(Protocol):
    def write(self, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None: ...

    def execute(self, statement: str, rows: Sequence[dict[str, Any]] | None = None) -> None: ...

    def finish(self) -> None: ...


class PostgresWriter:
    """COPY ... FROM STDIN, one table at a time, in one transaction."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(common.libpq_url(url))

    def write(self, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        json_columns = {index for index, name in enumerate(columns) if isinstance(table.c[name].type, sa.JSON)}
        names = ", ".join(f'"{name}"' for name in columns)
        with self.connection.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                if json_columns:
                    row = tuple(Json(value) if i in json_columns else value for i, value in enumerate(row))
                copy.write_row(row)

    def execute(self, statement: str, rows: Sequence[dict[str, Any]] | None = None) -> None:
        with self.connection.cursor() as cursor:
            if rows is None:
                cursor.execute(statement.encode())
            else:
                cursor.executemany(_pyformat(statement), rows)

    def finish(self) -> None:
        with self.connection.cursor() as cursor:
            for table in Base.metadata.sorted_tables:
                if "id" in table.c and isinstance(table.c.id.type, sa.BigInteger):
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f'coalesce((SELECT max(id) FROM "{table.name}"), 0) + 1, false)'
                    )
        self.connection.commit()
        self.connection.close()


def _pyformat(statement: str) -> str:
    """`:name` parameters to psycopg's `%(name)s`."""
    import re

    return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", statement)


class SqliteWriter:
    """executemany through SQLAlchemy Core (so timestamps and JSON are stored as the app stores them)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(common.sync_url(url))
        self.connection = self.engine.connect()
        self.connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        self.connection.exec_driver_sql("PRAGMA synchronous=OFF")

    def write(self, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        statement = table.insert()
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(dict(zip(columns, row, strict=True)))
            if len(chunk) >= CHUNK:
                self.connection.execute(statement, chunk)
                chunk = []
        if chunk:
            self.connection.execute(statement, chunk)

    def execute(self, statement: str, rows: Sequence[dict[str, Any]] | None = None) -> None:
        if rows is None:
            self.connection.execute(sa.text(statement))
        else:
            self.connection.execute(sa.text(statement), list(rows))

    def finish(self) -> None:
        self.connection.commit()
        self.connection.close()
        self.engine.dispose()


def writer_for(url: str) -> Writer:
    return PostgresWriter(url) if url.startswith("postgresql") else SqliteWriter(url)


def table_of(model: Any) -> sa.Table:
    return cast(sa.Table, model.__table__)


# --- the history ---------------------------------------------------------------------------------------


@dataclass
class _Sale:
    purchase_id: int
    customer_id: int
    partner_id: int
    occurred_at: datetime
    amount: int
    currency: str
    refunded: int


class History:
    """Builds rows in id order; ids are assigned here (the tables are empty), sequences are set after."""

    def __init__(self, profile: Profile, program_id: int, tiers: dict[str, Tier], now: datetime) -> None:
        self.profile = profile
        self.program_id = program_id
        self.tiers = tiers
        self.now = now
        self.random = random.Random(SEED)
        self.partner_tier: dict[int, Tier] = {}
        self.parent: dict[int, int | None] = {}
        self.accounts: dict[tuple[str, str, str], int] = {}
        self.account_rows: list[tuple[Any, ...]] = []
        self.transaction_id = 0
        self.entry_id = 0
        self.commission_id = 0

    # time ---------------------------------------------------------------------------------------------

    def moment(self, days: int | None = None) -> datetime:
        """A time in the last `days` days, denser towards today (the business grows)."""
        span = (days or self.profile.days) * 86_400
        back = span * (1 - self.random.random() ** 0.5)
        return self.now - timedelta(seconds=back + 1)

    # partners -----------------------------------------------------------------------------------------

    def partner_rows(self) -> Iterator[tuple[Any, ...]]:
        """The main partner (id 1, tier pro), its upline (2 ← 3), its sub-affiliates and the rest."""
        total = 1 + self.profile.others
        starter, pro = self.tiers["starter"], self.tiers["pro"]
        approved_at = self.now - timedelta(days=self.profile.days + 100)
        for partner_id in range(1, total + 1):
            tier = pro if partner_id == MAIN_PARTNER_ID else starter
            self.partner_tier[partner_id] = tier
            self.parent[partner_id] = self._parent_of(partner_id)
            yield (
                partner_id,
                self.program_id,
                tier.id,
                "affiliate",
                "approved",
                f"partner{partner_id}@bench.example",
                f"Bench Partner {partner_id}",
                f"bp{partner_id}",
                approved_at,
                approved_at,
                approved_at,
            )

    def _parent_of(self, partner_id: int) -> int | None:
        if partner_id == MAIN_PARTNER_ID:
            return 2
        if partner_id == 2:
            return 3
        if partner_id == 3:
            return None
        if partner_id <= 3 + self.profile.main_subaffiliates:
            return MAIN_PARTNER_ID
        return self.random.randint(4, partner_id - 1) if self.random.random() < 0.7 else None

    def chain(self, partner_id: int) -> list[int]:
        chain = [partner_id]
        while len(chain) < 3 and (parent := self.parent[chain[-1]]) is not None:
            chain.append(parent)
        return chain

    # links and clicks ---------------------------------------------------------------------------------

    def link_rows(self) -> tuple[list[tuple[Any, ...]], dict[int, list[int]], list[str]]:
        rows: list[tuple[Any, ...]] = []
        by_partner: dict[int, list[int]] = defaultdict(list)
        codes: list[str] = []
        link_id = 0
        for partner_id in self.partner_tier:
            count = self.profile.main_links if partner_id == MAIN_PARTNER_ID else self.profile.other_links
            for number in range(count):
                link_id += 1
                code = f"b{partner_id}x{number}"
                created = self.now - timedelta(days=self.profile.days + 1, seconds=link_id)
                rows.append((link_id, partner_id, code, "https://namaskah.app/", f"p{partner_id}", {}, True, created))
                by_partner[partner_id].append(link_id)
                codes.append(code)
        return rows, by_partner, codes

    def click_rows(self, links: dict[int, list[int]]) -> Iterator[tuple[Any, ...]]:
        click_id = 0
        for partner_id, link_ids in links.items():
            main = partner_id == MAIN_PARTNER_ID
            count = self.profile.main_clicks if main else self.profile.other_clicks
            visitors = max(1, int(count * self.profile.visitor_share))
            for _ in range(count):
                click_id += 1
                visitor = int(visitors * self.random.random() ** 1.5)
                bot = self.random.random() < self.profile.bot_share
                yield (
                    click_id,
                    f"{self.random.getrandbits(128):032x}",
                    self.random.choice(link_ids),
                    partner_id,
                    self.moment(),
                    hashlib.sha256(f"{partner_id}:{visitor}".encode()).hexdigest(),
                    BOT_AGENT if bot else self.random.choice(USER_AGENTS),
                    self.random.choice(REFERRERS),
                    self.random.choice(COUNTRIES),
                    bot,
                )

    # customers, purchases, commissions, ledger ------------------------------------------------------

    def customers(self) -> list[tuple[int, int, datetime]]:
        """(customer id, partner id, attributed at), partner by partner."""
        found: list[tuple[int, int, datetime]] = []
        for partner_id in self.partner_tier:
            main = partner_id == MAIN_PARTNER_ID
            count = self.profile.main_customers if main else self.profile.other_customers
            for _ in range(count):
                found.append((len(found) + 1, partner_id, self.moment()))
        return found

    def sales(self, customers: list[tuple[int, int, datetime]]) -> list[_Sale]:
        by_partner: dict[int, list[tuple[int, int, datetime]]] = defaultdict(list)
        for customer in customers:
            by_partner[customer[1]].append(customer)
        sales: list[_Sale] = []
        for partner_id, own in by_partner.items():
            main = partner_id == MAIN_PARTNER_ID
            count = self.profile.main_purchases if main else self.profile.other_purchases
            for _ in range(count):
                customer_id, _partner, attributed_at = self.random.choice(own)
                latest = min(self.now - timedelta(minutes=1), attributed_at + timedelta(days=60))
                occurred_at = attributed_at + (latest - attributed_at) * self.random.random()
                amount = self.random.choice(AMOUNTS)
                refunded = 0
                if self.random.random() < self.profile.refund_share:
                    refunded = amount if self.random.random() < 0.5 else amount // 2
                currency = "EUR" if self.random.random() < self.profile.eur_share else "USD"
                sales.append(_Sale(0, customer_id, partner_id, occurred_at, amount, currency, refunded))
        sales.sort(key=lambda sale: sale.occurred_at)
        for number, sale in enumerate(sales, 1):
            sale.purchase_id = number
        return sales

    def account(self, owner: str, kind: str, currency: str) -> int:
        key = (owner, kind, currency)
        if key not in self.accounts:
            account_id = len(self.accounts) + 1
            self.accounts[key] = account_id
            platform = owner == PLATFORM_OWNER
            self.account_rows.append(
                (account_id, owner, kind, currency, platform, platform, 0, 0, 0, self.now - timedelta(days=999))
            )
        return self.accounts[key]

    def _rates(self, chain: list[int]) -> list[int]:
        rates = []
        for level, partner_id in enumerate(chain, 1):
            tier = self.partner_tier[partner_id]
            rates.append(tier.base_rate_bps if level == 1 else getattr(tier, f"level{level}_rate_bps"))
        return rates

    def money_rows(self, sales: list[_Sale]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """("commission" | "transaction" | "entry", row) for every sale, in id order per table."""
        for sale in sales:
            chain = self.chain(sale.partner_id)
            shares = split_commissions(sale.amount, self._rates(chain))
            levels = enumerate(zip(chain, shares, strict=True), 1)
            paid = [(level, partner_id, share) for level, (partner_id, share) in levels if share > 0]
            if not paid:
                continue
            expense = self.account(PLATFORM_OWNER, COMMISSION_EXPENSE, sale.currency)
            created = self._transaction(
                f"purchase:{sale.purchase_id}:commissions",
                "commission",
                sale.occurred_at,
                {"purchase_id": sale.purchase_id},
                [(expense, -sum(share for _, _, share in paid))]
                + [
                    (self.account(partner_owner(partner_id), EARNINGS_PENDING, sale.currency), share)
                    for _, partner_id, share in paid
                ],
            )
            yield from created[1]
            payable_at = sale.occurred_at + timedelta(days=HOLD_DAYS)
            for level, partner_id, share in paid:
                self.commission_id += 1
                reversed_amount = reversed_for(share, sale.amount, sale.refunded) if sale.refunded else 0
                pending = self.account(partner_owner(partner_id), EARNINGS_PENDING, sale.currency)
                if reversed_amount:
                    refund_at = sale.occurred_at + timedelta(days=5)
                    yield from self._transaction(
                        f"refund:r{sale.purchase_id}:commission:{self.commission_id}",
                        "commission_reversal",
                        refund_at,
                        {"commission_id": self.commission_id},
                        [(pending, -reversed_amount), (expense, reversed_amount)],
                    )[1]
                status, approved_at = "pending", None
                if reversed_amount == share:
                    status = "reversed"
                elif payable_at <= self.now:
                    status, approved_at = "approved", payable_at
                    available = self.account(partner_owner(partner_id), EARNINGS_AVAILABLE, sale.currency)
                    yield from self._transaction(
                        f"commission:{self.commission_id}:approve",
                        "commission_approval",
                        payable_at,
                        {"commission_id": self.commission_id},
                        [(pending, -(share - reversed_amount)), (available, share - reversed_amount)],
                    )[1]
                yield (
                    "commission",
                    (
                        self.commission_id,
                        sale.purchase_id,
                        partner_id,
                        level,
                        sale.currency,
                        sale.amount,
                        self._rates(chain)[level - 1],
                        share,
                        reversed_amount,
                        status,
                        payable_at,
                        approved_at,
                        "refund" if reversed_amount else "",
                        created[0],
                        sale.occurred_at,
                    ),
                )

    def _transaction(
        self,
        key: str,
        kind: str,
        at: datetime,
        details: dict[str, Any],
        postings: list[tuple[int, int]],
    ) -> tuple[int, list[tuple[str, tuple[Any, ...]]]]:
        self.transaction_id += 1
        transaction_id = self.transaction_id
        rows: list[tuple[str, tuple[Any, ...]]] = [
            ("transaction", (transaction_id, key, "0" * 64, kind, "", details, at))
        ]
        for account_id, amount in postings:
            self.entry_id += 1
            currency = self.account_rows[account_id - 1][3]
            rows.append(("entry", (self.entry_id, transaction_id, account_id, currency, amount)))
        return transaction_id, rows


# --- loading -------------------------------------------------------------------------------------------

PARTNER_COLUMNS = (
    "id",
    "program_id",
    "tier_id",
    "kind",
    "status",
    "email",
    "name",
    "referral_code",
    "email_verified_at",
    "approved_at",
    "created_at",
)
LINK_COLUMNS = ("id", "partner_id", "code", "destination_url", "utm_source", "sub_ids", "active", "created_at")
CLICK_COLUMNS = (
    "id",
    "click_id",
    "link_id",
    "partner_id",
    "occurred_at",
    "ip_hash",
    "user_agent",
    "referrer",
    "country",
    "is_bot",
)
CUSTOMER_COLUMNS = (
    "id",
    "external_id",
    "email",
    "program_id",
    "partner_id",
    "attributed_via",
    "attributed_at",
    "signup_ip_hash",
    "first_purchase_at",
    "created_at",
)
PURCHASE_COLUMNS = (
    "id",
    "external_id",
    "customer_id",
    "partner_id",
    "amount",
    "currency",
    "product",
    "occurred_at",
    "refunded_amount",
    "status",
    "created_at",
)
REFUND_COLUMNS = ("id", "external_id", "purchase_id", "kind", "amount", "reason", "created_at")
COMMISSION_COLUMNS = (
    "id",
    "purchase_id",
    "partner_id",
    "level",
    "currency",
    "base_amount",
    "rate_bps",
    "amount",
    "reversed_amount",
    "status",
    "payable_at",
    "approved_at",
    "status_reason",
    "ledger_transaction_id",
    "created_at",
)
ACCOUNT_COLUMNS = (
    "id",
    "owner",
    "kind",
    "currency",
    "may_go_negative",
    "kept_as_sum",
    "posted",
    "pending_debits",
    "pending_credits",
    "created_at",
)
TRANSACTION_COLUMNS = ("id", "idempotency_key", "payload_hash", "kind", "description", "details", "created_at")
ENTRY_COLUMNS = ("id", "transaction_id", "account_id", "currency", "amount")


class _Load:
    """Writes each table with a progress bar."""

    def __init__(self, writer: Writer, progress: Progress) -> None:
        self.writer = writer
        self.progress = progress

    def table(self, model: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]], total: int) -> int:
        table = table_of(model)
        task = self.progress.add_task(table.name, total=total)
        defaults = _scalar_defaults(table, columns)
        written = 0

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal written
            for row in rows:
                written += 1
                if written % 5_000 == 0:
                    self.progress.update(task, completed=written)
                yield row + defaults[1] if defaults[1] else row

        self.writer.write(table, (*columns, *defaults[0]), counted())
        self.progress.update(task, completed=written, total=written)
        return written


def _scalar_defaults(table: sa.Table, columns: Sequence[str]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The model's plain (non-callable) defaults of the columns not given: COPY knows only server defaults."""
    names: list[str] = []
    values: list[Any] = []
    for column in table.columns:
        default = column.default
        if column.name in columns or default is None or not isinstance(default, ScalarElementColumnDefault):
            continue
        names.append(column.name)
        values.append(default.arg)
    return tuple(names), tuple(values)


async def _program(url: str, settings: Settings) -> tuple[int, dict[str, Tier]]:
    database = Database(create_engine(url))
    try:
        async with database.write() as session:
            program = await programs.ensure_default_program(session, settings)
            tiers = {tier.key: tier for tier in await programs.list_tiers(session, program.id)}
            return program.id, tiers
    finally:
        await database.dispose()


async def rebuild_rollups(url: str) -> None:
    """The dashboard's rollups, recounted from what was just loaded (bulk loads bypass the ORM listeners)."""
    database = Database(create_engine(url))
    try:
        async with database.write() as session:
            await rollups.rebuild(session)
    finally:
        await database.dispose()


def bench_settings(url: str) -> Settings:
    return Settings(DATABASE_URL=url, SECRET_KEY=common.SECRET_KEY, PARTNERS_ENV="production")


def generate(
    url: str, profile: Profile, *, quiet: bool = False, after: Callable[[Writer], None] | None = None
) -> Generated:
    """Fill an empty database (schema laid) with the history; returns what was written."""
    started = datetime.now(UTC)
    settings = bench_settings(url)
    program_id, tiers = asyncio.run(_program(url, settings))
    history = History(profile, program_id, tiers, now=datetime.now(UTC))
    writer = writer_for(url)
    columns = [TextColumn("{task.description:>20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=quiet) as progress:
        load = _Load(writer, progress)
        partners = load.table(Partner, PARTNER_COLUMNS, history.partner_rows(), 1 + profile.others)
        writer.execute(
            "UPDATE partners SET parent_id = :parent WHERE id = :id",
            [{"id": child, "parent": parent} for child, parent in history.parent.items() if parent is not None],
        )
        link_rows, links, codes = history.link_rows()
        load.table(TrackingLink, LINK_COLUMNS, link_rows, len(link_rows))
        expected_clicks = profile.main_clicks + profile.others * profile.other_clicks
        clicks = load.table(Click, CLICK_COLUMNS, history.click_rows(links), expected_clicks)
        customers = history.customers()
        sales = history.sales(customers)
        first_purchase: dict[int, datetime] = {}
        for sale in sales:
            first_purchase.setdefault(sale.customer_id, sale.occurred_at)
        load.table(
            Customer,
            CUSTOMER_COLUMNS,
            (
                (
                    customer_id,
                    f"c-{customer_id}",
                    f"customer{customer_id}@bench.example",
                    program_id,
                    partner_id,
                    "click",
                    attributed_at,
                    "",
                    first_purchase.get(customer_id),
                    attributed_at,
                )
                for customer_id, partner_id, attributed_at in customers
            ),
            len(customers),
        )
        load.table(Purchase, PURCHASE_COLUMNS, _purchase_rows(history, sales), len(sales))
        refunded = [sale for sale in sales if sale.refunded]
        load.table(
            Refund,
            REFUND_COLUMNS,
            (
                (
                    number,
                    f"r{sale.purchase_id}",
                    sale.purchase_id,
                    "refund",
                    sale.refunded,
                    "bench",
                    sale.occurred_at + timedelta(days=5),
                )
                for number, sale in enumerate(refunded, 1)
            ),
            len(refunded),
        )
        money: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for kind, row in history.money_rows(sales):
            money[kind].append(row)
        load.table(LedgerAccount, ACCOUNT_COLUMNS, history.account_rows, len(history.account_rows))
        load.table(LedgerTransaction, TRANSACTION_COLUMNS, money["transaction"], len(money["transaction"]))
        load.table(LedgerEntry, ENTRY_COLUMNS, money["entry"], len(money["entry"]))
        load.table(Commission, COMMISSION_COLUMNS, money["commission"], len(money["commission"]))
        writer.execute(
            "UPDATE ledger_accounts SET posted = (SELECT coalesce(sum(amount), 0) FROM ledger_entries "
            "WHERE ledger_entries.account_id = ledger_accounts.id) WHERE kept_as_sum = false"
        )
        if after is not None:
            after(writer)
        writer.finish()
        task = progress.add_task("rollups (rebuild)", total=1)
        asyncio.run(rebuild_rollups(url))
        progress.update(task, completed=1)
    other_customers = [f"c-{customer_id}" for customer_id, partner_id, _ in customers if partner_id > 3]
    return Generated(
        main_partner_id=MAIN_PARTNER_ID,
        partners=partners,
        links=codes,
        main_links=[code for code in codes if code.startswith(f"b{MAIN_PARTNER_ID}x")],
        clicks=clicks,
        customers=len(customers),
        purchases=len(sales),
        commissions=len(money["commission"]),
        transactions=len(money["transaction"]),
        entries=len(money["entry"]),
        seconds=round((datetime.now(UTC) - started).total_seconds(), 1),
        other_customer_ids=other_customers,
    )


def _purchase_rows(history: History, sales: list[_Sale]) -> Iterator[tuple[Any, ...]]:
    for sale in sales:
        status = "completed"
        if sale.refunded:
            status = "refunded" if sale.refunded == sale.amount else "partially_refunded"
        yield (
            sale.purchase_id,
            f"p-{sale.purchase_id}",
            sale.customer_id,
            sale.partner_id,
            sale.amount,
            sale.currency,
            history.random.choice(PRODUCTS),
            sale.occurred_at,
            sale.refunded,
            status,
            sale.occurred_at,
        )


# --- credentials ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    api_key: str
    partner_token: str


async def _credentials(url: str, partner_id: int) -> Credentials:
    settings = bench_settings(url)
    database = Database(create_engine(url))
    try:
        async with database.write() as session:
            _key, api_key = await identity.create_api_key(
                session, settings, name="bench host", scopes=["events:write"], created_by_id=None
            )
            token, _csrf = await identity.start_session(
                session, settings, subject_kind="partner", subject_id=partner_id, ip=None, user_agent="bench"
            )
        return Credentials(api_key=api_key, partner_token=token)
    finally:
        await database.dispose()


def credentials(url: str, partner_id: int = MAIN_PARTNER_ID) -> Credentials:
    """A host API key (events:write) and a login session of the partner (a bearer token)."""
    return asyncio.run(_credentials(url, partner_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=common.ENGINES, default="postgresql")
    parser.add_argument("--database", default="partners_bench", help="database (file) name")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full history")
    arguments = parser.parse_args()
    url = common.create_database(arguments.engine, arguments.database)
    profile = Profile().scaled(arguments.scale) if arguments.scale != 1.0 else Profile()
    generated = generate(url, profile)
    print(json.dumps({key: value for key, value in vars(generated).items() if not isinstance(value, list)}))


if __name__ == "__main__":
    main()
