"""Rollups: collected as changes happen, written once at commit, read by the dashboard, rebuilt from scratch.

Writers never call this module for ORM changes: `rollups.listeners` sees purchases, customers and commissions
being inserted or updated and adds their deltas to the session's `Pending`. Writers that use Core statements
count their own rows: the click recorder calls `record_clicks`, the purchase path `count_purchase`,
`count_new_commissions` and `count_link_buyer`. At the root transaction's commit the deltas are written in one go,
every table in the same order and each table's rows sorted by key, so two committing transactions never wait
for each other in a cycle. A savepoint rolled back takes its deltas with it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from partners.db import bulk, pipeline
from partners.db.session import dialect_insert, dialect_name
from partners.rollups.models import (
    LinkDay,
    LinkVisitor,
    PartnerBuyer,
    PartnerDay,
    PartnerDayCommissions,
    PartnerDayRevenue,
    PartnerVisitor,
)
from partners.tracking.models import Click, TrackingLink

PENDING_KEY = "partners.rollups.pending"
CHUNK = 500
PG_CHUNK = 5_000

_days = cast(sa.Table, PartnerDay.__table__)
_revenue = cast(sa.Table, PartnerDayRevenue.__table__)
_commissions = cast(sa.Table, PartnerDayCommissions.__table__)
_visitors = cast(sa.Table, PartnerVisitor.__table__)
_buyers = cast(sa.Table, PartnerBuyer.__table__)
_link_days = cast(sa.Table, LinkDay.__table__)
_link_visitors = cast(sa.Table, LinkVisitor.__table__)

DayKey = tuple[int, date]
RevenueKey = tuple[int, date, str]
CommissionKey = tuple[int, date, str, str, int]
K = TypeVar("K")


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- collecting ----------------------------------------------------------------------------------------


def _counters(size: int) -> defaultdict[Any, list[int]]:
    return defaultdict(lambda: [0] * size)


@dataclass
class Pending:
    """Deltas not yet written: counters per key, the latest day seen per visitor and buyer, and the buyers whose
    latest day may have moved back (a refund, a purchase moved): recounted from the purchases when written."""

    days: defaultdict[DayKey, list[int]] = field(default_factory=lambda: _counters(3))  # clicks, bots, signups
    revenue: defaultdict[RevenueKey, list[int]] = field(default_factory=lambda: _counters(3))  # n, gross, refunded
    commissions: defaultdict[CommissionKey, list[int]] = field(default_factory=lambda: _counters(3))  # n, amt, rev
    visitors: dict[tuple[int, str], date] = field(default_factory=dict)
    buyers: dict[tuple[int, int], date] = field(default_factory=dict)
    link_days: defaultdict[DayKey, list[int]] = field(default_factory=lambda: _counters(4))  # clicks, bots, signups,
    # buyers (of those signups)
    link_visitors: dict[tuple[int, str], date] = field(default_factory=dict)
    recheck_buyers: set[tuple[int, int]] = field(default_factory=set)

    def merge(self, other: Pending) -> None:
        _add(self.days, other.days)
        _add(self.revenue, other.revenue)
        _add(self.commissions, other.commissions)
        _add(self.link_days, other.link_days)
        for (partner, ip_hash), day in other.visitors.items():
            _see(self.visitors, (partner, ip_hash), day)
        for (partner, customer), day in other.buyers.items():
            _see(self.buyers, (partner, customer), day)
        for (link, ip_hash), day in other.link_visitors.items():
            _see(self.link_visitors, (link, ip_hash), day)
        self.recheck_buyers |= other.recheck_buyers

    @property
    def empty(self) -> bool:
        return not (
            self.days
            or self.revenue
            or self.commissions
            or self.visitors
            or self.buyers
            or self.link_days
            or self.recheck_buyers
        )

    def see_buyer(self, partner_id: int, customer_id: int, day: date) -> None:
        _see(self.buyers, (partner_id, customer_id), day)

    def recheck_buyer(self, partner_id: int, customer_id: int) -> None:
        self.recheck_buyers.add((partner_id, customer_id))


def _see(seen: dict[K, date], key: K, day: date) -> None:
    if key not in seen or seen[key] < day:
        seen[key] = day


def _add(mine: defaultdict[K, list[int]], theirs: Mapping[K, list[int]]) -> None:
    for key, values in theirs.items():
        mine[key] = [a + b for a, b in zip(mine[key], values, strict=True)]


def pending(session: Session) -> Pending:
    """The deltas of the session's innermost transaction (a savepoint's are dropped if it rolls back)."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    stack: list[tuple[SessionTransaction | None, Pending]] = session.info.setdefault(PENDING_KEY, [])
    if not stack or stack[-1][0] is not transaction:
        stack.append((transaction, Pending()))
    return stack[-1][1]


def drop_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    stack: list[tuple[SessionTransaction | None, Pending]] = session.info.get(PENDING_KEY, [])
    stack[:] = [(owner, deltas) for owner, deltas in stack if not _within(owner, rolled_back)]


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def pending_revenue(session: Session, partner_id: int, currency: str, first: date, before: date) -> int:
    """The partner's net revenue (gross - refunded) on the days [first, before) in deltas not yet written."""
    total = 0
    for _owner, deltas in session.info.get(PENDING_KEY, []):
        for (partner, day, in_currency), (_count, gross, refunded) in deltas.revenue.items():
            if partner == partner_id and in_currency == currency and first <= day < before:
                total += gross - refunded
    return total


def take_pending(session: Session) -> Pending:
    merged = Pending()
    for _owner, deltas in session.info.pop(PENDING_KEY, []):
        merged.merge(deltas)
    return merged


def record_clicks(session: Session, clicks: Iterable[Mapping[str, Any]]) -> None:
    """Count clicks written with Core (the recorder): each a mapping with partner_id, link_id, occurred_at,
    is_bot, ip_hash, as inserted into `clicks`."""
    deltas = pending(session)
    for click in clicks:
        partner_id, link_id, day = int(click["partner_id"]), int(click["link_id"]), utc_day(click["occurred_at"])
        if click["is_bot"]:
            deltas.days[(partner_id, day)][1] += 1
            deltas.link_days[(link_id, day)][1] += 1
        else:
            deltas.days[(partner_id, day)][0] += 1
            deltas.link_days[(link_id, day)][0] += 1
            _see(deltas.visitors, (partner_id, str(click["ip_hash"])), day)
            _see(deltas.link_visitors, (link_id, str(click["ip_hash"])), day)


def count_purchase(
    session: Session,
    *,
    partner_id: int,
    customer_id: int,
    occurred_at: datetime,
    currency: str,
    amount: int,
    refunded: int = 0,
) -> None:
    """Count a new purchase of a partner's customer: revenue, and its customer as a buyer unless the purchase
    is wholly refunded."""
    day = utc_day(occurred_at)
    deltas = pending(session)
    row = deltas.revenue[(partner_id, day, currency)]
    row[0] += 1
    row[1] += amount
    row[2] += refunded
    if refunded < amount:
        deltas.see_buyer(partner_id, customer_id, day)


def count_link_buyer(session: Session, link_id: int, attributed_at: datetime) -> None:
    """A customer who signed up through the link's click has made its first purchase."""
    pending(session).link_days[(link_id, utc_day(attributed_at))][3] += 1


def count_new_commissions(session: Session, sale_day: date, commissions: Iterable[Mapping[str, Any]]) -> None:
    """Count commissions inserted with Core: mappings with partner_id, currency, status, level, amount,
    reversed_amount, as inserted into `commissions`."""
    deltas = pending(session)
    for commission in commissions:
        key = (commission["partner_id"], sale_day, commission["currency"], commission["status"], commission["level"])
        row = deltas.commissions[key]
        row[0] += 1
        row[1] += commission["amount"]
        row[2] += commission["reversed_amount"]


def link_of_click(click_id: str, partner_id: int) -> sa.Select[int]:
    """The link a click came through, if that link is the partner's (signups count for their link)."""
    return (
        sa.select(Click.link_id)
        .join(TrackingLink, TrackingLink.id == Click.link_id)
        .where(Click.click_id == click_id, TrackingLink.partner_id == partner_id)
    )


# --- writing -------------------------------------------------------------------------------------------


def _chunks(items: Sequence[K], size: int = CHUNK) -> Iterator[Sequence[K]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _add_counts(session: Session, table: sa.Table, keys: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Upsert adding each row's counters to the stored ones, in key order."""
    rows = [row for row in rows if any(row[name] for name in row if name not in keys)]
    if not rows:
        return
    rows.sort(key=lambda row: tuple(row[name] for name in keys))
    upsert = bulk.add_counts(dialect_name(session), table, keys, rows)
    pipeline.run_later_in(session, upsert.statement, upsert.parameters)


def _last_seen(
    session: Session,
    table: sa.Table,
    names: tuple[str, str],
    seen: Mapping[tuple[int, Any], date],
    histogram: defaultdict[DayKey, list[int]],
    slot: int,
) -> None:
    """Move each (owner, key)'s latest day forward, and the histogram with it: +1 on the new latest day, -1
    on the old one. New keys are inserted first; existing ones are locked (FOR UPDATE) before being read."""
    postgres = dialect_name(session) == "postgresql"
    for chunk in _chunks(sorted(seen.items()), PG_CHUNK if postgres else CHUNK):
        new = _insert_new_keys(session, table, names, chunk)
        for (owner, key), day in chunk:
            if (owner, key) in new:
                histogram[(owner, day)][slot] += 1
        rest = [(owner, key) for (owner, key), _ in chunk if (owner, key) not in new]
        if not rest:
            continue
        moves: list[dict[str, Any]] = []
        locked: set[tuple[int, Any]] = set()
        for row_id, owner, key, stored in _lock_known_keys(session, table, names, rest):
            old, day = as_date(stored), seen[(int(owner), key)]
            locked.add((int(owner), key))
            if day > old:
                moves.append({"id": row_id, "last_day": day})
                histogram[(int(owner), old)][slot] -= 1
                histogram[(int(owner), day)][slot] += 1
        if moves:
            update = bulk.update(dialect_name(session), table, moves)  # by id: looked up in its index
            pipeline.run_later_in(session, update.statement, update.parameters)
        deleted_meanwhile = {key: seen[key] for key in rest if key not in locked}
        if deleted_meanwhile:  # a buyer's row, by another transaction's recheck (`_recheck_buyers`)
            _last_seen(session, table, names, deleted_meanwhile, histogram, slot)


def _insert_new_keys(
    session: Session, table: sa.Table, names: tuple[str, str], chunk: Sequence[tuple[tuple[int, Any], date]]
) -> set[tuple[int, Any]]:
    """Insert the keys not stored yet, with their day; the (owner, key) pairs inserted."""
    if not chunk:
        return set()
    if dialect_name(session) == "postgresql":
        insert, _ = _last_seen_statements(table, names)
        inserted = session.execute(insert, _given((owner, key, day) for (owner, key), day in chunk))
    else:
        rows = [{names[0]: owner, names[1]: key, "last_day": day} for (owner, key), day in chunk]
        returning = (table.c[names[0]], table.c[names[1]])
        inserted = session.execute(dialect_insert(session, table).on_conflict_do_nothing().returning(*returning), rows)
    return {(int(owner), key) for owner, key in inserted}


def _lock_known_keys(
    session: Session, table: sa.Table, names: tuple[str, str], keys: Sequence[tuple[int, Any]]
) -> Iterable[Any]:
    """The stored rows of these (owner, key) pairs (id, owner, key, last day), locked in key order."""
    if dialect_name(session) == "postgresql":
        _, select_locked = _last_seen_statements(table, names)
        return session.execute(select_locked, _given((owner, key, None) for owner, key in keys))
    owner_column, key_column = table.c[names[0]], table.c[names[1]]
    return session.execute(
        sa.select(table.c.id, owner_column, key_column, table.c.last_day)
        .where(sa.tuple_(owner_column, key_column).in_(list(keys)))
        .order_by(owner_column, key_column)
        .with_for_update()
    )


def _given(items: Iterable[tuple[int, Any, date | None]]) -> dict[str, str]:
    """(owner, key, day) triples (no day for a lookup) as the one JSON parameter of the PostgreSQL statements
    (`json_to_recordset`): rendering and sending hundreds of rows one by one blocked the click recorder's event
    loop, and psycopg's Python array dumpers were the next cost."""
    return {"given": orjson.dumps([{"o": owner, "k": key, "d": day} for owner, key, day in items]).decode()}


@functools.cache
def _last_seen_statements(table: sa.Table, names: tuple[str, str]) -> tuple[sa.TextClause, sa.TextClause]:
    """PostgreSQL's INSERT of new last-seen keys and locking SELECT of the others, built once per table.

    The SELECT looks each given key up in the unique index, in the given order (sorted: the lock order of every
    writer), through a LATERAL subquery that LIMIT 1 keeps from being flattened into a join: as a join, the
    planner took json_to_recordset for 100 rows and hashed the whole table, whatever its statistics — a
    sequential scan per flush growing with the table (8 ms per 500-click flush at 25,000 visitors, 3.4 ms looked
    up; bench/README.md, round 9)."""
    owner, key = names
    key_type = "varchar" if isinstance(table.c[key].type, sa.String) else "bigint"
    given = f"json_to_recordset(CAST(:given AS json)) AS given(o bigint, k {key_type}, d date)"
    return (
        sa.text(
            f"INSERT INTO {table.name} ({owner}, {key}, last_day) SELECT o, k, d FROM {given} "
            f"ON CONFLICT DO NOTHING RETURNING {owner}, {key}"
        ),
        sa.text(
            f"SELECT t.id, t.{owner}, t.{key}, t.last_day FROM {given} CROSS JOIN LATERAL "
            f"(SELECT id, {owner}, {key}, last_day FROM {table.name} WHERE {owner} = given.o AND {key} = given.k "
            f"LIMIT 1 FOR UPDATE) AS t"
        ),
    )


_BUYER_KEY = ("partner_id", "customer_id")


def _recheck_buyers(session: Session, keys: set[tuple[int, int]], histogram: defaultdict[DayKey, list[int]]) -> None:
    """Set each (partner, customer)'s latest day to that of its latest purchase not wholly refunded, as the
    purchases are now (a refund or a moved purchase can take it back, or remove the buyer), and the histogram
    with it. The same order as `_last_seen`: new keys inserted, then every key's row locked, then the purchases
    read again, so they include those of any transaction that held the rows."""
    for chunk in _chunks(sorted(keys)):
        paid = _latest_paid_days(session, chunk)
        new = _insert_new_keys(session, _buyers, _BUYER_KEY, sorted(paid.items()))
        for owner, key in new:
            histogram[(owner, paid[(owner, key)])][1] += 1
        locked = _lock_known_keys(session, _buyers, _BUYER_KEY, chunk)
        stored = {(int(owner), int(key)): (row_id, as_date(day)) for row_id, owner, key, day in locked}
        latest = _latest_paid_days(session, chunk)
        moves: list[dict[str, Any]] = []
        gone: list[int] = []
        for (owner, key), (row_id, old) in stored.items():
            day = latest.get((owner, key))
            if day == old:
                continue
            histogram[(owner, old)][1] -= 1
            if day is None:
                gone.append(row_id)
            else:
                moves.append({"id": row_id, "last_day": day})
                histogram[(owner, day)][1] += 1
        if moves:
            update = bulk.update(dialect_name(session), _buyers, moves)
            pipeline.run_later_in(session, update.statement, update.parameters)
        if gone:
            session.execute(sa.delete(_buyers).where(_buyers.c.id.in_(gone)))
        deleted_meanwhile = {key for key in latest if key not in stored}  # by another transaction's recheck
        if deleted_meanwhile:
            _recheck_buyers(session, deleted_meanwhile, histogram)


def _latest_paid_days(session: Session, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], date]:
    """The UTC day of each (partner, customer)'s latest purchase not wholly refunded (keys with none left out)."""
    from partners.events.models import Purchase

    rows = session.execute(
        sa.select(Purchase.partner_id, Purchase.customer_id, sa.func.max(Purchase.occurred_at))
        .where(
            sa.tuple_(Purchase.partner_id, Purchase.customer_id).in_(list(keys)),
            Purchase.refunded_amount < Purchase.amount,
        )
        .group_by(Purchase.partner_id, Purchase.customer_id)
    )
    return {(owner, key): utc_day(latest) for owner, key, latest in rows if owner is not None}


def write(session: Session, deltas: Pending) -> None:
    """Apply the deltas (visitors, buyers, link visitors, days, revenue, commissions, link days: always this
    order). Buyers to recheck are recounted with the transaction's other buyers, in one pass in key order."""
    histogram: defaultdict[DayKey, list[int]] = _counters(2)
    _last_seen(session, _visitors, ("partner_id", "ip_hash"), deltas.visitors, histogram, 0)
    if deltas.recheck_buyers:
        _recheck_buyers(session, deltas.recheck_buyers | set(deltas.buyers), histogram)
    else:
        _last_seen(session, _buyers, _BUYER_KEY, deltas.buyers, histogram, 1)
    link_histogram: defaultdict[DayKey, list[int]] = _counters(1)
    _last_seen(session, _link_visitors, ("link_id", "ip_hash"), deltas.link_visitors, link_histogram, 0)
    day_rows: dict[DayKey, dict[str, Any]] = {}
    for (partner, day), (clicks, bots, signups) in deltas.days.items():
        day_rows[(partner, day)] = {
            "partner_id": partner,
            "day": day,
            "clicks": clicks,
            "bot_clicks": bots,
            "signups": signups,
            "visitors": 0,
            "buyers": 0,
        }
    for (partner, day), (visitors, buyers) in histogram.items():
        row = day_rows.setdefault(
            (partner, day),
            {"partner_id": partner, "day": day, "clicks": 0, "bot_clicks": 0, "signups": 0},
        )
        row["visitors"], row["buyers"] = visitors, buyers
    _add_counts(session, _days, ("partner_id", "day"), list(day_rows.values()))
    _add_counts(
        session,
        _revenue,
        ("partner_id", "day", "currency"),
        [
            {"partner_id": p, "day": d, "currency": c, "purchases": n, "gross": g, "refunded": r}
            for (p, d, c), (n, g, r) in deltas.revenue.items()
        ],
    )
    _add_counts(
        session,
        _commissions,
        ("partner_id", "day", "currency", "status", "level"),
        [
            {
                "partner_id": p,
                "day": d,
                "currency": c,
                "status": s,
                "level": lv,
                "count": n,
                "amount": a,
                "reversed": r,
            }
            for (p, d, c, s, lv), (n, a, r) in deltas.commissions.items()
        ],
    )
    link_rows: dict[DayKey, dict[str, Any]] = {}
    for (link, day), (clicks, bots, signups, buyers) in deltas.link_days.items():
        link_rows[(link, day)] = {
            "link_id": link,
            "day": day,
            "clicks": clicks,
            "bot_clicks": bots,
            "visitors": 0,
            "signups": signups,
            "buyers": buyers,
        }
    for (link, day), (visitors,) in link_histogram.items():
        link_rows.setdefault(
            (link, day),
            {"link_id": link, "day": day, "clicks": 0, "bot_clicks": 0, "signups": 0, "buyers": 0},
        )["visitors"] = visitors
    _add_counts(session, _link_days, ("link_id", "day"), list(link_rows.values()))


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayCounts:
    clicks: int
    bot_clicks: int
    signups: int


@dataclass(frozen=True, slots=True)
class RevenueTotal:
    currency: str
    purchases: int
    gross: int
    refunded: int


@dataclass(frozen=True, slots=True)
class CommissionTotal:
    status: str
    currency: str
    level: int
    count: int
    amount: int
    reversed: int


@dataclass(frozen=True)
class PartnerPeriod:
    """A partner's rollups over [first, last], summed by the database: per-day counters, purchases per day,
    net commissions per day and currency, and totals. `visitors` / `buyers` are None when the histograms
    cannot answer (someone was seen after `last`): count those from the raw tables."""

    days: dict[date, DayCounts]
    visitors: int | None
    buyers: int | None
    purchases_by_day: dict[date, int]
    revenue: list[RevenueTotal]
    commissions: list[CommissionTotal]
    earnings_by_day: dict[date, dict[str, int]]  # net commissions (all levels) on the day's sales, per currency


# The dashboard's reads, built once: building the read endpoints' statements at each request was 10-15% of their
# CPU (bench/README.md, round 13). The parameters: partner_id, first, last.
_PERIOD_DAYS = sa.select(
    _days.c.day, _days.c.clicks, _days.c.bot_clicks, _days.c.signups, _days.c.visitors, _days.c.buyers
).where(_days.c.partner_id == sa.bindparam("partner_id"), _days.c.day >= sa.bindparam("first"))
_PERIOD_REVENUE = (
    sa.select(
        _revenue.c.day,
        _revenue.c.currency,
        sa.func.sum(_revenue.c.purchases),
        sa.func.sum(_revenue.c.gross),
        sa.func.sum(_revenue.c.refunded),
    )
    .where(
        _revenue.c.partner_id == sa.bindparam("partner_id"),
        _revenue.c.day >= sa.bindparam("first"),
        _revenue.c.day <= sa.bindparam("last"),
    )
    .group_by(_revenue.c.day, _revenue.c.currency)
)
_IN_PERIOD_COMMISSIONS = (
    _commissions.c.partner_id == sa.bindparam("partner_id"),
    _commissions.c.day >= sa.bindparam("first"),
    _commissions.c.day <= sa.bindparam("last"),
)
_COMMISSION_COUNT = sa.func.sum(_commissions.c.count)
_PERIOD_COMMISSIONS = (
    sa.select(
        _commissions.c.status,
        _commissions.c.currency,
        _commissions.c.level,
        _COMMISSION_COUNT,
        sa.func.sum(_commissions.c.amount),
        sa.func.sum(_commissions.c.reversed),
    )
    .where(*_IN_PERIOD_COMMISSIONS)
    .group_by(_commissions.c.status, _commissions.c.currency, _commissions.c.level)
    .having(_COMMISSION_COUNT != 0)
)
_PERIOD_EARNINGS = (
    sa.select(
        _commissions.c.day,
        _commissions.c.currency,
        sa.func.sum(_commissions.c.amount - _commissions.c.reversed),
    )
    .where(*_IN_PERIOD_COMMISSIONS)
    .group_by(_commissions.c.day, _commissions.c.currency)
    .having(_COMMISSION_COUNT != 0)
)


async def partner_period(session: AsyncSession, partner_id: int, first: date, last: date) -> PartnerPeriod:
    period = {"partner_id": partner_id, "first": first, "last": last}
    day_rows = await session.execute(_PERIOD_DAYS, period)
    days: dict[date, DayCounts] = {}
    visitors = buyers = 0
    seen_later = [False, False]
    for stored_day, clicks, bots, signups, day_visitors, day_buyers in day_rows:
        day = as_date(stored_day)
        if day > last:
            seen_later = [seen_later[0] or day_visitors != 0, seen_later[1] or day_buyers != 0]
            continue
        days[day] = DayCounts(int(clicks), int(bots), int(signups))
        visitors += int(day_visitors)
        buyers += int(day_buyers)
    revenue_rows = await session.execute(_PERIOD_REVENUE, period)
    purchases_by_day: defaultdict[date, int] = defaultdict(int)
    revenue: defaultdict[str, list[int]] = _counters(3)
    for day, currency, purchases, gross, refunded in revenue_rows:
        purchases_by_day[as_date(day)] += int(purchases)
        totals = revenue[currency]
        totals[0] += int(purchases)
        totals[1] += int(gross)
        totals[2] += int(refunded)
    commissions = await session.execute(_PERIOD_COMMISSIONS, period)
    earnings = await session.execute(_PERIOD_EARNINGS, period)
    earnings_by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for day, currency, net in earnings:
        earnings_by_day[as_date(day)][currency] = int(net)
    return PartnerPeriod(
        days=days,
        visitors=None if seen_later[0] else visitors,
        buyers=None if seen_later[1] else buyers,
        purchases_by_day=dict(purchases_by_day),
        revenue=[RevenueTotal(currency, n, g, r) for currency, (n, g, r) in revenue.items() if n != 0],
        commissions=[CommissionTotal(s, c, int(lv), int(n), int(a), int(r)) for s, c, lv, n, a, r in commissions],
        earnings_by_day=dict(earnings_by_day),
    )


async def commission_count(
    session: AsyncSession, partner_id: int, *, status: str | None, level: int | None, currency: str | None
) -> int:
    """How many commissions the partner has (of this status, level, currency)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(_commissions.c.count), 0)).where(
        _commissions.c.partner_id == partner_id
    )
    if status is not None:
        query = query.where(_commissions.c.status == status)
    if level is not None:
        query = query.where(_commissions.c.level == level)
    if currency is not None:
        query = query.where(_commissions.c.currency == currency.upper())
    return int(await session.scalar(query) or 0)


@dataclass(frozen=True, slots=True)
class LinkTotals:
    """A link's totals over a period; `visitors` is None when the histogram cannot answer."""

    clicks: int
    bot_clicks: int
    visitors: int | None
    signups: int
    buyers: int


@functools.cache
def _link_totals_query(from_first: bool, to_last: bool) -> sa.Select[Any]:
    """`link_totals`' statement for a period bounded or not on each side, built once (its eleven sums and cases
    took a worker 0.3-0.4 ms to build; bench/README.md, round 13). The parameters: link_ids, first, last.
    With `last`, the days after it are read too: a visitor last seen after `last` makes the histogram unable to
    answer. Without it, every day read is in the period: plain sums, without the cases that cost the database
    more than the sums themselves (the links page's usual statement; bench/README.md, round 15)."""
    days = _link_days.c
    counters = (days.clicks, days.bot_clicks, days.visitors, days.signups, days.buyers)
    of_the_links: list[sa.ColumnElement[bool]] = [days.link_id.in_(sa.bindparam("link_ids", expanding=True))]
    if from_first:
        of_the_links.append(days.day >= sa.bindparam("first"))
    if not to_last:
        sums = (sa.func.sum(column) for column in counters)
        return sa.select(days.link_id, *sums, sa.literal(0)).where(*of_the_links).group_by(days.link_id)
    in_period = days.day <= sa.bindparam("last")
    return (
        sa.select(
            days.link_id,
            *(sa.func.coalesce(sa.func.sum(sa.case((in_period, column), else_=0)), 0) for column in counters),
            sa.func.max(sa.case((sa.and_(~in_period, days.visitors > 0), 1), else_=0)),
        )
        .where(*of_the_links)
        .group_by(days.link_id)
        .having(sa.func.sum(sa.case((in_period, 1), else_=0)) > 0)
    )


async def link_totals(
    session: AsyncSession, link_ids: Sequence[int], first: date | None, last: date | None
) -> dict[int, LinkTotals]:
    """Each link's totals over the days [first, last] (None: unbounded), summed by the database: a link's
    history is a row per day, hundreds of them, and adding them up in Python cost more than the query.
    Unique visitors are known only if none of the link's visitors was last seen after `last`."""
    if not link_ids:
        return {}
    query = _link_totals_query(first is not None, last is not None)
    parameters = {"link_ids": list(link_ids), "first": first, "last": last}
    totals: dict[int, LinkTotals] = {}
    for row in await session.execute(query, parameters):
        link_id, clicks, bots, visitors, signups, buyers, seen_later = tuple(row)
        totals[int(link_id)] = LinkTotals(
            clicks=int(clicks),
            bot_clicks=int(bots),
            visitors=None if seen_later else int(visitors),
            signups=int(signups),
            buyers=int(buyers),
        )
    return totals


async def net_revenue_by_partner(
    session: AsyncSession, partners: sa.Select[Any], currency: str, first: date, last: date
) -> dict[int, int]:
    """Each partner's net revenue (gross - refunded) in `currency` from its own customers' purchases on the days
    [first, last]; `partners` selects the partner ids."""
    rows = await session.execute(
        sa.select(_revenue.c.partner_id, sa.func.sum(_revenue.c.gross - _revenue.c.refunded))
        .where(
            _revenue.c.partner_id.in_(partners),
            _revenue.c.currency == currency,
            _revenue.c.day >= first,
            _revenue.c.day <= last,
        )
        .group_by(_revenue.c.partner_id)
    )
    return {int(partner): int(net) for partner, net in rows}


async def buyers_by_partner(
    session: AsyncSession, partners: sa.Select[Any], first: date, last: date
) -> tuple[dict[int, int], set[int]]:
    """Each partner's distinct paying customers on the days [first, last] from the last-seen histogram, and the
    partners it cannot answer for (a customer's latest paid day is after `last`): count those from purchases."""
    days = _days.c
    in_period = days.day <= last
    rows = await session.execute(
        sa.select(
            days.partner_id,
            sa.func.coalesce(sa.func.sum(sa.case((in_period, days.buyers), else_=0)), 0),
            sa.func.max(sa.case((sa.and_(~in_period, days.buyers != 0), 1), else_=0)),
        )
        .where(days.partner_id.in_(partners), days.day >= first)
        .group_by(days.partner_id)
    )
    counted: dict[int, int] = {}
    unknown: set[int] = set()
    for partner, buyers, seen_later in rows:
        if seen_later:
            unknown.add(int(partner))
        elif buyers:
            counted[int(partner)] = int(buyers)
    return counted, unknown


# --- rebuilding from the raw tables --------------------------------------------------------------------


def _day_of(dialect: str, column: Any) -> Any:
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column, type_=sa.Date)  # SQLite keeps UTC text: its date part is the UTC day


def recount_queries(dialect: str) -> dict[str, tuple[sa.Table, sa.Select[Any]]]:
    """What each rollup table holds, computed from the raw tables (rows with counters all zero left out)."""
    from partners.commissions.models import Commission
    from partners.events.models import Purchase
    from partners.tracking.models import Click, Customer, TrackingLink

    click_day = _day_of(dialect, Click.occurred_at)
    sale_day = _day_of(dialect, Purchase.occurred_at)
    visitors = (
        sa.select(Click.partner_id, Click.ip_hash, sa.func.max(click_day).label("last_day"))
        .where(Click.is_bot.is_(False))
        .group_by(Click.partner_id, Click.ip_hash)
    )
    buyers = (
        sa.select(Purchase.partner_id, Purchase.customer_id, sa.func.max(sale_day).label("last_day"))
        .where(Purchase.partner_id.is_not(None), Purchase.refunded_amount < Purchase.amount)
        .group_by(Purchase.partner_id, Purchase.customer_id)
    )
    seen_visitors, seen_buyers = visitors.subquery(), buyers.subquery()
    zero = sa.literal(0)
    one = sa.literal(1)
    human = sa.case((Click.is_bot, 0), else_=1)
    parts = sa.union_all(
        sa.select(
            Click.partner_id.label("partner_id"),
            click_day.label("day"),
            human.label("clicks"),
            (one - human).label("bot_clicks"),
            zero.label("signups"),
            zero.label("visitors"),
            zero.label("buyers"),
        ),
        sa.select(Customer.partner_id, _day_of(dialect, Customer.attributed_at), zero, zero, one, zero, zero).where(
            Customer.partner_id.is_not(None), Customer.attributed_at.is_not(None)
        ),
        sa.select(seen_visitors.c.partner_id, seen_visitors.c.last_day, zero, zero, zero, one, zero),
        sa.select(seen_buyers.c.partner_id, seen_buyers.c.last_day, zero, zero, zero, zero, one),
    ).subquery()
    days = sa.select(
        parts.c.partner_id,
        parts.c.day,
        sa.func.sum(parts.c.clicks),
        sa.func.sum(parts.c.bot_clicks),
        sa.func.sum(parts.c.signups),
        sa.func.sum(parts.c.visitors),
        sa.func.sum(parts.c.buyers),
    ).group_by(parts.c.partner_id, parts.c.day)
    revenue = (
        sa.select(
            Purchase.partner_id,
            sale_day,
            Purchase.currency,
            sa.func.count(),
            sa.func.sum(Purchase.amount),
            sa.func.sum(Purchase.refunded_amount),
        )
        .where(Purchase.partner_id.is_not(None))
        .group_by(Purchase.partner_id, sale_day, Purchase.currency)
    )
    commissions = (
        sa.select(
            Commission.partner_id,
            sale_day,
            Commission.currency,
            Commission.status,
            Commission.level,
            sa.func.count(),
            sa.func.sum(Commission.amount),
            sa.func.sum(Commission.reversed_amount),
        )
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .group_by(Commission.partner_id, sale_day, Commission.currency, Commission.status, Commission.level)
    )
    link_visitors = (
        sa.select(Click.link_id, Click.ip_hash, sa.func.max(click_day).label("last_day"))
        .where(Click.is_bot.is_(False))
        .group_by(Click.link_id, Click.ip_hash)
    )
    seen_link_visitors = link_visitors.subquery()
    attributed = (
        sa.select(
            Click.link_id.label("link_id"),
            _day_of(dialect, Customer.attributed_at).label("day"),
            sa.case((Customer.first_purchase_at.is_(None), 0), else_=1).label("bought"),
        )
        .select_from(Customer)
        .join(Click, Click.click_id == Customer.click_id)
        .join(TrackingLink, TrackingLink.id == Click.link_id)
        .where(
            Customer.partner_id == TrackingLink.partner_id,
            Customer.attributed_via == "click",
            Customer.attributed_at.is_not(None),
        )
        .subquery()
    )
    link_parts = sa.union_all(
        sa.select(
            Click.link_id.label("link_id"),
            click_day.label("day"),
            human.label("clicks"),
            (one - human).label("bot_clicks"),
            zero.label("visitors"),
            zero.label("signups"),
            zero.label("buyers"),
        ),
        sa.select(seen_link_visitors.c.link_id, seen_link_visitors.c.last_day, zero, zero, one, zero, zero),
        sa.select(attributed.c.link_id, attributed.c.day, zero, zero, zero, one, attributed.c.bought),
    ).subquery()
    link_days = sa.select(
        link_parts.c.link_id,
        link_parts.c.day,
        sa.func.sum(link_parts.c.clicks),
        sa.func.sum(link_parts.c.bot_clicks),
        sa.func.sum(link_parts.c.visitors),
        sa.func.sum(link_parts.c.signups),
        sa.func.sum(link_parts.c.buyers),
    ).group_by(link_parts.c.link_id, link_parts.c.day)
    return {
        "visitors": (_visitors, visitors),
        "buyers": (_buyers, buyers),
        "link_visitors": (_link_visitors, link_visitors),
        "days": (_days, days),
        "revenue": (_revenue, revenue),
        "commissions": (_commissions, commissions),
        "link_days": (_link_days, link_days),
    }


def _columns(table: sa.Table) -> list[str]:
    return [column.name for column in table.columns if column.name != "id"]


async def rebuild(session: AsyncSession, rebuilt: Callable[[str, int], None] | None = None) -> None:
    """Recompute every rollup from the raw tables (after a bulk load, an upgrade that changes what they count,
    or to repair them); `rebuilt(table, rows)` is called after each table."""
    dialect = dialect_name(session)
    for table, query in recount_queries(dialect).values():
        await session.execute(sa.delete(table))
        await session.execute(sa.insert(table).from_select(_columns(table), query))
        if rebuilt is not None:
            rows = await session.scalar(sa.select(sa.func.count()).select_from(table))
            rebuilt(table.name, int(rows or 0))


async def stored_and_recounted(session: AsyncSession) -> dict[str, tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]]:
    """For each rollup table: (its rows, the recount's rows), zero rows left out, for comparing."""
    dialect = dialect_name(session)
    found = {}
    for name, (table, query) in recount_queries(dialect).items():
        columns = [table.c[column] for column in _columns(table)]
        stored = {tuple(row) for row in await session.execute(sa.select(*columns))}
        recounted = {tuple(row) for row in await session.execute(query)}
        found[name] = ({row for row in stored if _counts(name, row)}, {row for row in recounted if _counts(name, row)})
    return found


def _counts(name: str, row: tuple[Any, ...]) -> bool:
    """A row that counts something (last-seen rows always do)."""
    if name in ("visitors", "buyers", "link_visitors"):
        return True
    numbers = row[-5:] if name in ("days", "link_days") else row[-3:]
    return any(int(value) for value in numbers)
