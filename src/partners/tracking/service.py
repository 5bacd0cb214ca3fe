"""Tracking links, the redirect's link lookup, attribution of customers, coupons and re-assignment.

Attribution (`attribute_customer`), in this order:

1. Lifetime binding: a customer already attributed keeps its partner; nothing the signup sends changes it
   (only an admin re-assignment does).
2. Click id, within the program's cookie window. The host sends the click id it got from the redirect (the
   `click_id` query parameter or the `np_click` cookie, which always holds the browser's latest click). Each
   click also stores the click id the browser already carried (`previous_click_id`), so one browser's clicks
   form a chain, newest to oldest. The candidates are the chain's clicks that exist, are not bots, happened
   at or after `now - cookie_window_days`, and belong to a partner of this program who can earn.
   - last_click (the default): the newest candidate wins, normally the click id sent.
   - first_click: the oldest candidate still inside the window wins.
   No click, no such click, only bots, only expired clicks or only partners who can't earn: fall through.
3. Coupon code: an active coupon assigned to a partner of this program who can earn.
4. Referral code: the partner's `referral_code`, same conditions.
5. Otherwise the customer stays unattributed (a later signup call may still attribute it).

At every step a self-referral (the customer's email equals the partner's, ignoring case) is not a candidate,
so the next method is tried. A click written less than a second before the signup may still be in the click
recorder's batch: it counts as not found.
"""

from __future__ import annotations

import enum
import functools
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import ColumnElement, bindparam, case, distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from partners.affiliates.models import Partner
from partners.affiliates.service import can_earn
from partners.audit.service import Actor, record
from partners.db.session import dialect_insert
from partners.db.types import utcnow
from partners.kit.crypto import keyed_hash
from partners.kit.errors import Conflict, NotFound, Unprocessable
from partners.programs.models import Program
from partners.rollups import service as rollups
from partners.settings import Settings
from partners.tracking.models import Click, Coupon, Customer, TrackingLink
from partners.tracking.schemas import LinkCreate, LinkStats

CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
CODE_LENGTH = 8
CODE_ATTEMPTS = 5
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_CHAIN_CLICKS = 25
SECONDS_PER_DAY = 86_400
IP_HASH_PURPOSE = "click-ip"

AttributedVia = Literal["click", "coupon", "referral_code", "admin"]


def hash_ip(settings: Settings, ip: str) -> str:
    """Keyed (HMAC) so stored hashes can't be reversed by hashing all 2^32 IPv4 addresses."""
    return keyed_hash(settings, ip, purpose=IP_HASH_PURPOSE)


def short_url(settings: Settings, code: str) -> str:
    return f"{settings.base_url.rstrip('/')}/r/{code}"


# --- destinations --------------------------------------------------------------------------------------


def _host_allowed(host: str, allowed: list[str]) -> bool:
    """Exact host names; an entry "*.example.com" allows its subdomains."""
    for entry in (item.strip().lower() for item in allowed):
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def validate_destination(program: Program, url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable("the destination must be an http(s) URL", field="destination_url")
    if parts.username is not None or parts.password is not None:
        raise Unprocessable("the destination must not carry credentials", field="destination_url")
    host = parts.hostname.lower()
    if not _host_allowed(host, program.allowed_destination_hosts):
        allowed = ", ".join(program.allowed_destination_hosts) or "none"
        raise Unprocessable(
            f"{host} is not a destination this program allows (allowed: {allowed})", field="destination_url"
        )
    return urlunsplit(parts)


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    """The destination with UTM parameters and ref in place; only the click id changes per click."""

    base: str  # scheme://host/path?query (the query always has ref)
    fragment: str  # "" or "#..."

    def location(self, click_id: str) -> str:
        return f"{self.base}&click_id={click_id}{self.fragment}"

    def preview(self) -> str:
        return f"{self.base}{self.fragment}"


def redirect_target(destination: str, utm: Mapping[str, str | None], referral_code: str) -> RedirectTarget:
    """Keep the destination's own query parameters, except those the link sets (UTM, ref, click_id)."""
    return _redirect_target(destination, tuple(utm.items()), referral_code)


# A pure function of strings, ~8 µs a call (urllib's parsing and quoting): remembered for the links list's pages,
# which build one per link (bench/README.md, round 14).
@functools.lru_cache(maxsize=16_384)
def _redirect_target(destination: str, utm: tuple[tuple[str, str | None], ...], referral_code: str) -> RedirectTarget:
    parts = urlsplit(destination)
    ours = {name: value for name, value in utm if value} | {"ref": referral_code}
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in ours and name != "click_id"
    ]
    query.extend(ours.items())
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    return RedirectTarget(base=base, fragment=f"#{parts.fragment}" if parts.fragment else "")


def link_utm(link: TrackingLink) -> dict[str, str | None]:
    return {name: getattr(link, name) for name in UTM_FIELDS}


# --- links ---------------------------------------------------------------------------------------------


async def _code_taken(session: AsyncSession, code: str) -> bool:
    """Link codes and partners' referral codes share /r/<code>, so neither may shadow the other."""
    if await session.scalar(select(TrackingLink.id).where(TrackingLink.code == code)) is not None:
        return True
    return await session.scalar(select(Partner.id).where(Partner.referral_code == code)) is not None


async def ensure_referral_link(session: AsyncSession, referral_code: str) -> bool:
    """Give an approved partner's plain referral link (/r/<referral code>) its tracking link, landing on the
    program's landing URL. Created on first use; False when no approved partner has this code."""
    row = (
        await session.execute(
            select(Partner.id, Program.landing_url)
            .join(Program, Program.id == Partner.program_id)
            .where(Partner.referral_code == referral_code, Partner.status == "approved", Program.active.is_(True))
        )
    ).first()
    if row is None:
        return False
    partner_id, landing_url = row
    await session.execute(
        dialect_insert(session, TrackingLink)
        .values(
            partner_id=partner_id,
            code=referral_code,
            destination_url=landing_url,
            sub_ids={},
            active=True,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
    )
    return True


async def _new_code(session: AsyncSession) -> str:
    for _ in range(CODE_ATTEMPTS):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not await _code_taken(session, code):
            return code
    raise Conflict("could not find a free link code; try again")


async def _partner_and_program(session: AsyncSession, partner_id: int) -> tuple[Partner, Program]:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    program = await session.get(Program, partner.program_id)
    if program is None:
        raise NotFound(f"program {partner.program_id} not found", field="program_id")
    return partner, program


async def create_link(session: AsyncSession, *, partner_id: int, data: LinkCreate) -> TrackingLink:
    _partner, program = await _partner_and_program(session, partner_id)
    destination = validate_destination(program, data.destination_url)
    if data.slug is not None and await _code_taken(session, data.slug):
        raise Conflict(f"the link code {data.slug!r} is taken", field="slug")
    code = data.slug or await _new_code(session)
    link = TrackingLink(
        partner_id=partner_id,
        code=code,
        destination_url=destination,
        sub_ids=dict(data.sub_ids),
        active=True,
        **{name: getattr(data, name) or None for name in UTM_FIELDS},
    )
    try:
        async with session.begin_nested():
            session.add(link)
            await session.flush()
    except IntegrityError as error:  # a concurrent request took the same code
        raise Conflict(f"the link code {code!r} is taken", field="slug") from error
    return link


async def set_link_active(session: AsyncSession, *, partner_id: int, link_id: int, active: bool) -> TrackingLink:
    """A partner switches one of its own links off or on again. A link switched off answers 404 within the
    link cache's time (30 s); its clicks, customers and commissions stay as they are."""
    link = await session.scalar(
        select(TrackingLink)
        .where(TrackingLink.id == link_id, TrackingLink.partner_id == partner_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if link is None:
        raise NotFound(f"link {link_id} not found", field="link_id")
    link.active = active
    await session.flush()
    return link


async def list_links(
    session: AsyncSession,
    *,
    partner_id: int,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[TrackingLink, LinkStats]], int]:
    """The partner's links, newest first, each with its stats over [start, end)."""
    total = await session.scalar(
        select(func.count()).select_from(TrackingLink).where(TrackingLink.partner_id == partner_id)
    )
    links = list(
        await session.scalars(
            select(TrackingLink)
            .where(TrackingLink.partner_id == partner_id)
            .order_by(TrackingLink.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    stats = await _link_stats(session, partner_id, [link.id for link in links], start, end)
    empty = LinkStats(clicks=0, unique_clicks=0, bot_clicks=0, signups=0, customers=0)
    return [(link, stats.get(link.id, empty)) for link in links], total or 0


def _whole_days(start: datetime | None, end: datetime | None) -> tuple[date | None, date | None] | None:
    """[start, end) as the UTC days [first, last] when both bounds fall on midnight UTC (or are open)."""
    bounds = [bound.astimezone(UTC) for bound in (start, end) if bound is not None]
    if any((bound.hour, bound.minute, bound.second, bound.microsecond) != (0, 0, 0, 0) for bound in bounds):
        return None
    first = start.astimezone(UTC).date() if start is not None else None
    last = end.astimezone(UTC).date() - timedelta(days=1) if end is not None else None
    return first, last


async def _link_stats(
    session: AsyncSession, partner_id: int, link_ids: list[int], start: datetime | None, end: datetime | None
) -> dict[int, LinkStats]:
    """From the daily link rollups when the period is whole days; from the raw tables otherwise (and for the
    unique clicks the rollups cannot answer)."""
    days = _whole_days(start, end)
    if days is None:
        clicks = await _click_stats(session, link_ids, start, end)
        signups = await _signup_stats(session, partner_id, link_ids, start, end)
        return {
            link_id: LinkStats(
                clicks=clicks.get(link_id, (0, 0, 0))[0],
                unique_clicks=clicks.get(link_id, (0, 0, 0))[1],
                bot_clicks=clicks.get(link_id, (0, 0, 0))[2],
                signups=signups.get(link_id, (0, 0))[0],
                customers=signups.get(link_id, (0, 0))[1],
            )
            for link_id in link_ids
        }
    totals = await rollups.link_totals(session, link_ids, *days)
    unanswered = [link_id for link_id, total in totals.items() if total.visitors is None]
    raw = await _click_stats(session, unanswered, start, end) if unanswered else {}
    return {
        link_id: LinkStats(
            clicks=total.clicks,
            unique_clicks=total.visitors if total.visitors is not None else raw.get(link_id, (0, 0, 0))[1],
            bot_clicks=total.bot_clicks,
            signups=total.signups,
            customers=total.buyers,
        )
        for link_id, total in totals.items()
    }


def _period(
    column: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    start: datetime | None,
    end: datetime | None,
) -> list[ColumnElement[bool]]:
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


async def _click_stats(
    session: AsyncSession, link_ids: list[int], start: datetime | None, end: datetime | None
) -> dict[int, tuple[int, int, int]]:
    if not link_ids:
        return {}
    human = Click.is_bot.is_(False)
    query = (
        select(
            Click.link_id,
            func.sum(case((human, 1), else_=0)),
            func.count(distinct(case((human, Click.ip_hash)))),
            func.sum(case((human, 0), else_=1)),
        )
        .where(Click.link_id.in_(link_ids), *_period(Click.occurred_at, start, end))
        .group_by(Click.link_id)
    )
    rows = await session.execute(query)
    return {link_id: (int(clicks), int(unique), int(bots)) for link_id, clicks, unique, bots in rows}


async def _signup_stats(
    session: AsyncSession, partner_id: int, link_ids: list[int], start: datetime | None, end: datetime | None
) -> dict[int, tuple[int, int]]:
    """Customers attributed (in the period) through a click of each link, and how many of them bought."""
    if not link_ids:
        return {}
    query = (
        select(Click.link_id, func.count(Customer.id), func.count(Customer.first_purchase_at))
        .join(Click, Click.click_id == Customer.click_id)
        .where(
            Customer.partner_id == partner_id,
            Customer.attributed_via == "click",
            Click.link_id.in_(link_ids),
            *_period(Customer.attributed_at, start, end),
        )
        .group_by(Click.link_id)
    )
    rows = await session.execute(query)
    return {link_id: (int(signups), int(customers)) for link_id, signups, customers in rows}


# --- the redirect's lookup -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedLink:
    link_id: int
    partner_id: int
    target: RedirectTarget
    cookie_max_age: int


_RESOLVE = (
    select(
        TrackingLink.id,
        TrackingLink.partner_id,
        TrackingLink.destination_url,
        TrackingLink.utm_source,
        TrackingLink.utm_medium,
        TrackingLink.utm_campaign,
        TrackingLink.utm_term,
        TrackingLink.utm_content,
        Partner.referral_code,
        Program.cookie_window_days,
    )
    .join(Partner, Partner.id == TrackingLink.partner_id)
    .join(Program, Program.id == Partner.program_id)
    .where(
        TrackingLink.code == bindparam("code"),
        TrackingLink.active.is_(True),
        Partner.status == "approved",
        Program.active.is_(True),
    )
)


async def resolve_link(session: AsyncSession, code: str) -> ResolvedLink | None:
    """An active link of an approved partner in an active program; None for anything else."""
    row = (await session.execute(_RESOLVE, {"code": code})).first()
    if row is None:
        return None
    link_id, partner_id, destination, *utm_values, referral_code, window_days = row
    utm = dict(zip(UTM_FIELDS, utm_values, strict=True))
    return ResolvedLink(
        link_id=link_id,
        partner_id=partner_id,
        target=redirect_target(destination, utm, referral_code),
        cookie_max_age=window_days * SECONDS_PER_DAY,
    )


class _Miss(enum.Enum):
    MISS = 0


MISS = _Miss.MISS


class LinkCache:
    """A small LRU of code → ResolvedLink, kept `ttl` seconds (a deactivated link stops redirecting within
    that time), or → None for an unknown code, kept `miss_ttl` seconds (a scanner can't make every guess a
    query, and a new link answers at once everywhere but in the rare process that was just asked for it)."""

    def __init__(
        self,
        *,
        maxsize: int = 10_000,
        ttl: float = 30.0,
        miss_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, ResolvedLink | None]] = OrderedDict()

    def get(self, code: str) -> ResolvedLink | Literal[_Miss.MISS] | None:
        entry = self._entries.get(code)
        if entry is None:
            return MISS
        expires_at, value = entry
        if expires_at < self._clock():
            del self._entries[code]
            return MISS
        self._entries.move_to_end(code)
        return value

    def put(self, code: str, value: ResolvedLink | None) -> None:
        ttl = self.ttl if value is not None else self.miss_ttl
        self._entries[code] = (self._clock() + ttl, value)
        self._entries.move_to_end(code)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def discard(self, code: str) -> None:
        self._entries.pop(code, None)


def link_cache(state: Any) -> LinkCache:
    """The app's link cache (`state`: the app's `State`), made on first use: one per app, as tests run several
    apps, on different databases, in one process."""
    cache: LinkCache | None = getattr(state, "tracking_link_cache", None)
    if cache is None:
        cache = LinkCache()
        state.tracking_link_cache = cache
    return cache


# --- attribution ---------------------------------------------------------------------------------------


async def find_customer(session: AsyncSession, external_id: str) -> Customer | None:
    result: Customer | None = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    return result


@dataclass(frozen=True, slots=True)
class _Attribution:
    partner_id: int
    via: AttributedVia
    click_id: str | None = None


@dataclass(frozen=True, slots=True)
class _ChainClick:
    click_id: str
    partner_id: int
    occurred_at: datetime
    is_bot: bool


class _Eligibility:
    """Whether a partner may be credited with this customer; partners are loaded once per signup."""

    def __init__(self, session: AsyncSession, program: Program, email: str) -> None:
        self.session = session
        self.program = program
        self.email = email.strip().casefold()
        self._known: dict[int, bool] = {}

    async def __call__(self, partner_id: int) -> bool:
        if partner_id not in self._known:
            self._known[partner_id] = await self._check(partner_id)
        return self._known[partner_id]

    async def _check(self, partner_id: int) -> bool:
        partner = await self.session.get(Partner, partner_id)
        if partner is None or partner.program_id != self.program.id:
            return False
        if self.email and partner.email.strip().casefold() == self.email:
            return False  # self-referral
        return await can_earn(self.session, partner)


async def _click_chain(session: AsyncSession, click_id: str, window_start: datetime) -> list[_ChainClick]:
    """The browser's clicks inside the window, newest first, following previous_click_id."""
    chain: list[_ChainClick] = []
    seen: set[str] = set()
    next_id: str | None = click_id
    while next_id is not None and next_id not in seen and len(seen) < MAX_CHAIN_CLICKS:
        seen.add(next_id)
        row = (
            await session.execute(
                select(
                    Click.click_id, Click.partner_id, Click.occurred_at, Click.is_bot, Click.previous_click_id
                ).where(Click.click_id == next_id)
            )
        ).first()
        if row is None or row.occurred_at < window_start:
            break
        chain.append(_ChainClick(row.click_id, row.partner_id, row.occurred_at, row.is_bot))
        next_id = row.previous_click_id
    return chain


async def _by_click(
    session: AsyncSession, program: Program, eligible: _Eligibility, click_id: str, now: datetime
) -> _Attribution | None:
    window_start = now - timedelta(days=program.cookie_window_days)
    chain = [click for click in await _click_chain(session, click_id, window_start) if not click.is_bot]
    if program.attribution_model == "first_click":
        chain.reverse()
    for click in chain:
        if await eligible(click.partner_id):
            return _Attribution(click.partner_id, "click", click.click_id)
    return None


async def _by_coupon(session: AsyncSession, eligible: _Eligibility, coupon_code: str) -> _Attribution | None:
    partner_id = await session.scalar(
        select(Coupon.partner_id).where(Coupon.code == normalise_coupon(coupon_code), Coupon.active.is_(True))
    )
    if partner_id is not None and await eligible(partner_id):
        return _Attribution(partner_id, "coupon")
    return None


async def _by_referral_code(session: AsyncSession, eligible: _Eligibility, referral_code: str) -> _Attribution | None:
    partner_id = await session.scalar(select(Partner.id).where(Partner.referral_code == referral_code.strip()))
    if partner_id is not None and await eligible(partner_id):
        return _Attribution(partner_id, "referral_code")
    return None


async def _choose(
    session: AsyncSession,
    program: Program,
    *,
    email: str,
    click_id: str | None,
    referral_code: str | None,
    coupon_code: str | None,
    now: datetime,
) -> _Attribution | None:
    eligible = _Eligibility(session, program, email)
    if click_id and (found := await _by_click(session, program, eligible, click_id.strip(), now)):
        return found
    if coupon_code and (found := await _by_coupon(session, eligible, coupon_code)):
        return found
    if referral_code and (found := await _by_referral_code(session, eligible, referral_code)):
        return found
    return None


async def attribute_customer(
    session: AsyncSession,
    settings: Settings,
    *,
    program: Program,
    external_id: str,
    email: str,
    click_id: str | None,
    referral_code: str | None,
    coupon_code: str | None,
    ip: str | None,
    now: datetime,
) -> Customer:
    """Create or return the customer, attributed by the precedence in this module's docstring."""
    customer = await find_customer(session, external_id)
    if customer is None:
        customer = Customer(
            external_id=external_id,
            email=email,
            program_id=program.id,
            signup_ip_hash=hash_ip(settings, ip) if ip else "",
        )
        session.add(customer)
    elif customer.partner_id is not None:
        return customer
    chosen = await _choose(
        session,
        program,
        email=email,
        click_id=click_id,
        referral_code=referral_code,
        coupon_code=coupon_code,
        now=now,
    )
    if chosen is not None:
        customer.program_id = program.id
        customer.partner_id = chosen.partner_id
        customer.attributed_via = chosen.via
        customer.click_id = chosen.click_id
        customer.attributed_at = now
    await session.flush()
    return customer


async def reassign_customer(
    session: AsyncSession, actor: Actor, *, external_id: str, partner_id: int, reason: str, now: datetime
) -> Customer:
    """Bind the customer to another partner from now on (past commissions stay where they are); audited."""
    customer = await find_customer(session, external_id)
    if customer is None:
        raise NotFound(f"customer {external_id!r} not found", field="external_id")
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    if customer.program_id is not None and partner.program_id != customer.program_id:
        raise Unprocessable("the partner belongs to another program than the customer", field="partner_id")
    if customer.partner_id == partner.id:
        raise Conflict("the customer is already assigned to this partner", field="partner_id")
    previous_partner_id = customer.partner_id
    customer.partner_id = partner.id
    customer.program_id = partner.program_id
    customer.attributed_via = "admin"
    customer.click_id = None
    customer.attributed_at = now
    await session.flush()
    await record(
        session,
        actor,
        "customer.reassigned",
        subject_type="customer",
        subject_id=customer.id,
        details={
            "external_id": customer.external_id,
            "from_partner_id": previous_partner_id,
            "to_partner_id": partner.id,
            "reason": reason,
        },
    )
    return customer


# --- coupons -------------------------------------------------------------------------------------------


def normalise_coupon(code: str) -> str:
    return code.strip().upper()


async def create_coupon(session: AsyncSession, actor: Actor, *, partner_id: int, code: str) -> Coupon:
    if await session.get(Partner, partner_id) is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    code = normalise_coupon(code)
    if await session.scalar(select(Coupon.id).where(Coupon.code == code)) is not None:
        raise Conflict(f"the coupon code {code!r} is taken", field="code")
    coupon = Coupon(code=code, partner_id=partner_id, active=True)
    try:
        async with session.begin_nested():
            session.add(coupon)
            await session.flush()
    except IntegrityError as error:
        raise Conflict(f"the coupon code {code!r} is taken", field="code") from error
    await record(
        session,
        actor,
        "coupon.created",
        subject_type="coupon",
        subject_id=coupon.id,
        details={"code": code, "partner_id": partner_id},
    )
    return coupon


async def set_coupon_active(session: AsyncSession, actor: Actor, *, code: str, active: bool) -> Coupon:
    """Staff switch a coupon off (it no longer attributes new customers; those it brought stay bound) or on."""
    code = normalise_coupon(code)
    coupon = await session.scalar(
        select(Coupon).where(Coupon.code == code).with_for_update().execution_options(populate_existing=True)
    )
    if coupon is None:
        raise NotFound(f"coupon {code!r} not found", field="code")
    if coupon.active != active:
        coupon.active = active
        await session.flush()
        await record(
            session,
            actor,
            "coupon.activated" if active else "coupon.deactivated",
            subject_type="coupon",
            subject_id=coupon.id,
            details={"code": code, "partner_id": coupon.partner_id},
        )
    return coupon


async def list_coupons(session: AsyncSession, partner_id: int) -> list[Coupon]:
    result = await session.scalars(select(Coupon).where(Coupon.partner_id == partner_id).order_by(Coupon.id.desc()))
    return list(result)
