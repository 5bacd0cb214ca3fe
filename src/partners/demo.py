"""`partners demo`: a demo owner, a host API key, and 90 days of a small affiliate business.

Everything money-related goes through the real services (host events → attribution → commissions → ledger,
daily approvals), so every balance is one the ledger computed. A seeded random generator makes the data the
same on every machine (only the dates move with today). The partner ada@example.com is the marker: when she
exists the data is there and a second run changes nothing. It all happens in one transaction, so a failed
run leaves nothing behind.

The people: ada recruited ben, ben recruited cyd (a 3-level chain); dev (with the coupon DEV10) and eve are
unrelated partners; fay is an applicant still waiting for review.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service as affiliates
from partners.affiliates.models import Partner
from partners.affiliates.schemas import RegistrationIn
from partners.audit.service import Actor
from partners.commissions import service as commissions
from partners.db.session import Database
from partners.db.types import utcnow
from partners.events import service as events
from partners.events.schemas import ChargebackIn, PurchaseIn, RefundIn, SignupIn
from partners.identity import service as identity
from partners.identity.models import ApiKey, StaffUser
from partners.identity.roles import Role
from partners.programs import service as programs
from partners.programs.models import Program
from partners.settings import Settings, get_settings
from partners.tracking import service as tracking
from partners.tracking.models import Click
from partners.tracking.recorder import ClickEvent, click_row
from partners.tracking.schemas import LinkCreate

SEED = 20_260_301
DAYS = 90
ADMIN_EMAIL = "admin@namaskah.local"
ADMIN_PASSWORD = "namaskah-demo-admin"
PARTNER_PASSWORD = "namaskah-demo-partner"
API_KEY_NAME = "demo host"
API_KEY_SCOPES = ("events:write", "partners:read", "partners:write")
COUPON = "DEV10"
WELCOME_CREDITS = 500  # 5.00 in the program's currency for each referred customer


@dataclass(frozen=True)
class DemoPartner:
    key: str
    name: str
    country: str
    recruiter: str | None
    approved: bool
    clicks_per_day: int  # human clicks on an average day
    referral_signups_per_week: float  # signups that quote the referral code (no click)


PEOPLE = (
    DemoPartner("ada", "Ada Lovelace", "GB", None, True, 6, 1.0),
    DemoPartner("ben", "Ben Okafor", "NG", "ada", True, 4, 0.5),
    DemoPartner("cyd", "Cyd Charisse", "US", "ben", True, 8, 0.5),
    DemoPartner("dev", "Dev Patel", "IN", None, True, 4, 0.0),
    DemoPartner("eve", "Eve Moreau", "FR", None, True, 2, 0.3),
    DemoPartner("fay", "Fay Wong", "SG", None, False, 0, 0.0),
)
MARKER_EMAIL = "ada@example.com"

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
)
BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0",
)
BOT_SHARE = 0.08
CLICK_SIGNUP_RATE = 0.04
UNATTRIBUTED_SIGNUPS_PER_WEEK = 1.5
PRICES: dict[str, tuple[int, int]] = {  # minor units, low..high
    "sms": (500, 5_000),
    "whatsapp": (1_000, 8_000),
    "voice": (1_000, 10_000),
    "rental": (2_000, 15_000),
    "subscription": (2_900, 9_900),
    "credits": (1_000, 40_000),
}


def email_of(key: str) -> str:
    return f"{key}@example.com"


@dataclass
class Counts:
    clicks: int = 0
    customers: int = 0
    purchases: int = 0
    refunds: int = 0


@dataclass(order=True)
class Action:
    """One thing that happens at `at` in the demo's history, replayed in time order."""

    at: datetime
    order: int
    run: Callable[[AsyncSession], Awaitable[None]] = field(compare=False)


# --- the parts that are created once each ----------------------------------------------------------------


async def _demo_owner(session: AsyncSession) -> StaffUser:
    owner = await identity.find_staff_by_email(session, ADMIN_EMAIL)
    if owner is None:
        owner = await identity.create_staff_user(
            session, email=ADMIN_EMAIL, name="Demo owner", password=ADMIN_PASSWORD, role=Role.OWNER
        )
    return owner


async def _host_key_line(session: AsyncSession, settings: Settings, owner: StaffUser) -> str:
    existing = await session.scalar(
        sa.select(ApiKey).where(ApiKey.name == API_KEY_NAME, ApiKey.revoked_at.is_(None)).limit(1)
    )
    if existing is not None:
        return (
            f"Host API key: '{API_KEY_NAME}' (npk_{existing.prefix}_...) exists already; only its hash is "
            "stored, so create a new one with POST /admin/api-keys if it is lost."
        )
    _key, raw = await identity.create_api_key(
        session, settings, name=API_KEY_NAME, scopes=API_KEY_SCOPES, created_by_id=owner.id
    )
    return f"Host API key (shown once, only its hash is kept): {raw}"


# --- partners, links and clicks --------------------------------------------------------------------------


async def _partners(
    session: AsyncSession, settings: Settings, program: Program, staff: Actor, start: datetime
) -> dict[str, Partner]:
    agreement = await affiliates.current_agreement(session, program.id)
    if agreement is None:
        agreement = await affiliates.publish_agreement(
            session,
            program.id,
            title="Namaskah partner terms",
            body="Promote Namaskah honestly: no spam, no paid search on our brand.",
            actor=staff,
        )
    partners: dict[str, Partner] = {}
    for person in PEOPLE:
        recruiter = partners[person.recruiter].referral_code if person.recruiter else None
        partner = await affiliates.register_partner(
            session,
            settings,
            RegistrationIn(
                name=person.name,
                email=email_of(person.key),
                password=PARTNER_PASSWORD,
                website=f"https://{person.key}.example.com",
                audience="Developers who need phone verification",
                country=person.country,
                recruiter_code=recruiter,
                accept_agreement=agreement.version,
            ),
            ip="127.0.0.1",
            user_agent="partners demo",
            now=start,
            rate_limited=False,
        )
        partner.email_verified_at = start
        if person.approved:
            await affiliates.change_status(
                session, settings, partner.id, "approve", actor=staff, reason="demo", now=start
            )
        partners[person.key] = partner
    return partners


def _day_start(day: int, today: datetime) -> datetime:
    """Day 0 is DAYS days ago; the last day is yesterday, so nothing lies in the future."""
    first = datetime.combine(today.date(), time(), tzinfo=UTC) - timedelta(days=DAYS)
    return first + timedelta(days=day)


def _clicks(
    rng: random.Random,
    settings: Settings,
    partner: Partner,
    link_id: int,
    person: DemoPartner,
    today: datetime,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    visitors = [f"198.51.{partner.id % 250}.{n}" for n in range(1, 255)]
    for day in range(DAYS):
        trend = 0.6 + 0.8 * day / DAYS  # a business that grows
        humans = max(0, round(rng.gauss(person.clicks_per_day * trend, 1.5)))
        bots = sum(1 for _ in range(humans) if rng.random() < BOT_SHARE / (1 - BOT_SHARE))
        for index in range(humans + bots):
            user_agent = rng.choice(BOTS) if index >= humans else rng.choice(BROWSERS)
            event = ClickEvent(
                click_id=f"{rng.getrandbits(128):032x}",
                link_id=link_id,
                partner_id=partner.id,
                occurred_at=_day_start(day, today) + timedelta(seconds=rng.randrange(86_400)),
                ip_hash=tracking.hash_ip(settings, rng.choice(visitors)),
                user_agent=user_agent,
                referrer=rng.choice(("https://news.ycombinator.com/", "https://www.youtube.com/", "")),
                country=rng.choice(("US", "IN", "GB", "DE", "NG", None)),
                previous_click_id=None,
            )
            rows.append(click_row(event))
    return rows


async def _links_and_clicks(
    session: AsyncSession,
    rng: random.Random,
    settings: Settings,
    partners: dict[str, Partner],
    today: datetime,
) -> list[dict[str, Any]]:
    """Each approved partner's link and its clicks, stored; returns the click rows."""
    all_rows: list[dict[str, Any]] = []
    for person in PEOPLE:
        if not person.approved:
            continue
        partner = partners[person.key]
        link = await tracking.create_link(
            session,
            partner_id=partner.id,
            data=LinkCreate(
                destination_url="https://namaskah.app/signup",
                utm_source=person.key,
                utm_medium="affiliate",
                utm_campaign="demo",
                utm_term=None,
                utm_content=None,
                slug=f"{person.key}-demo",
            ),
        )
        rows = _clicks(rng, settings, partner, link.id, person, today)
        for chunk in range(0, len(rows), 500):
            await session.execute(sa.insert(Click), rows[chunk : chunk + 500])
        all_rows.extend(rows)
    return all_rows


# --- customers, purchases, refunds: the history replayed through the host events ---------------------------


class History:
    """Builds the demo's history (signups, purchases, refunds, daily approvals) as time-ordered actions."""

    def __init__(self, rng: random.Random, settings: Settings, now: datetime) -> None:
        self.rng = rng
        self.settings = settings
        self.now = now
        self.actions: list[Action] = []
        self.counts = Counts()

    def _add(self, at: datetime, run: Callable[[AsyncSession], Awaitable[None]]) -> None:
        if at < self.now:
            self.actions.append(Action(at, len(self.actions), run))

    def signup(self, at: datetime, **attribution: str | None) -> None:
        if at >= self.now:
            return
        self.counts.customers += 1
        number = self.counts.customers
        customer = f"demo-cust-{number:04d}"
        event = SignupIn(
            external_id=customer,
            email=f"customer{number}@example.net",
            ip=f"203.0.113.{number % 250}",
            occurred_at=at,
            **attribution,
        )

        async def run(session: AsyncSession) -> None:
            await events.record_signup(session, self.settings, event, now=at)

        self._add(at, run)
        self._purchases(customer, at)

    def _purchases(self, customer: str, signed_up: datetime) -> None:
        if self.rng.random() > 0.75:
            return  # never buys
        at = signed_up + timedelta(minutes=self.rng.randrange(10, 4 * 24 * 60))
        while at < self.now:
            self._purchase(customer, at)
            if self.rng.random() > 0.6:
                return
            at += timedelta(days=self.rng.randrange(2, 21), minutes=self.rng.randrange(1_440))

    def _purchase(self, customer: str, at: datetime) -> None:
        self.counts.purchases += 1
        purchase_id = f"demo-pay-{self.counts.purchases:05d}"
        product = self.rng.choice(tuple(PRICES))
        low, high = PRICES[product]
        amount = self.rng.choice((low, high)) if product == "subscription" else self.rng.randrange(low, high)
        event = PurchaseIn(
            external_id=purchase_id,
            customer=customer,
            amount=amount,
            currency="EUR" if self.rng.random() < 0.3 else "USD",
            product=product,
            occurred_at=at,
        )

        async def run(session: AsyncSession) -> None:
            await events.record_purchase(session, event, now=at)

        self._add(at, run)
        self._refund(purchase_id, amount, at)

    def _refund(self, purchase_id: str, amount: int, bought: datetime) -> None:
        roll = self.rng.random()
        if roll >= 0.13:
            return
        at = bought + timedelta(days=self.rng.randrange(1, 45), minutes=self.rng.randrange(1_440))
        if at >= self.now:
            return
        self.counts.refunds += 1
        refund_id = f"demo-ref-{self.counts.refunds:05d}"
        run: Callable[[AsyncSession], Awaitable[None]]
        if roll < 0.01:
            chargeback = ChargebackIn(external_id=refund_id, purchase_id=purchase_id, reason="disputed")

            async def run(session: AsyncSession) -> None:
                await events.record_chargeback(session, chargeback, now=at)

        else:
            part = amount if roll < 0.04 else max(1, amount * self.rng.randrange(10, 70) // 100)
            refund = RefundIn(external_id=refund_id, purchase_id=purchase_id, amount=part, reason="customer asked")

            async def run(session: AsyncSession) -> None:
                await events.record_refund(session, refund, now=at)

        self._add(at, run)

    def daily_approvals(self, today: datetime) -> None:
        """What the periodic approval job does every night."""
        for day in range(1, DAYS + 1):
            at = _day_start(day, today)

            async def run(session: AsyncSession, at: datetime = at) -> None:
                await commissions.approve_due_commissions(session, now=at)

            self._add(at - timedelta(microseconds=1), run)


def _plan_signups(
    history: History,
    rng: random.Random,
    clicks: list[dict[str, Any]],
    partners: dict[str, Partner],
    today: datetime,
) -> None:
    for row in clicks:
        if not row["is_bot"] and rng.random() < CLICK_SIGNUP_RATE:
            history.signup(row["occurred_at"] + timedelta(minutes=rng.randrange(1, 120)), click_id=row["click_id"])
    for person in PEOPLE:
        if not person.approved:
            continue
        for day in range(DAYS):
            if rng.random() < person.referral_signups_per_week / 7:
                at = _day_start(day, today) + timedelta(seconds=rng.randrange(86_400))
                history.signup(at, referral_code=partners[person.key].referral_code)
    for day in range(DAYS):
        at = _day_start(day, today) + timedelta(seconds=rng.randrange(86_400))
        if rng.random() < 0.15:
            history.signup(at, coupon_code=COUPON)
        elif rng.random() < UNATTRIBUTED_SIGNUPS_PER_WEEK / 7:
            history.signup(at)


# --- the whole ------------------------------------------------------------------------------------------


async def _load(session: AsyncSession, settings: Settings, owner: StaffUser, now: datetime) -> Counts:
    rng = random.Random(SEED)
    staff = Actor("staff", str(owner.id))
    start = _day_start(0, now) - timedelta(days=1)
    program = await programs.ensure_default_program(session, settings)
    if program.welcome_reward_kind == "none":
        await programs.update_program(
            session, staff, program.id, welcome_reward_kind="credits", welcome_reward_value=WELCOME_CREDITS
        )
    partners = await _partners(session, settings, program, staff, start)
    await tracking.create_coupon(session, staff, partner_id=partners["dev"].id, code=COUPON)
    clicks = await _links_and_clicks(session, rng, settings, partners, now)
    history = History(rng, settings, now)
    _plan_signups(history, rng, clicks, partners, now)
    history.daily_approvals(now)
    for action in sorted(history.actions):
        await action.run(session)
    await commissions.approve_due_commissions(session, now=now)
    history.counts.clicks = len(clicks)
    return history.counts


async def load_demo_data(database: Database, settings: Settings | None = None) -> list[str]:
    """Load the demo once; returns the lines for the CLI to print (URL, logins, the API key note)."""
    settings = settings or get_settings()
    async with database.write() as session:
        owner = await _demo_owner(session)
        key_line = await _host_key_line(session, settings, owner)
        if await affiliates.find_partner_by_email(session, MARKER_EMAIL) is not None:
            status = "Demo data: already loaded, nothing changed."
        else:
            counts = await _load(session, settings, owner, utcnow())
            status = (
                f"Demo data loaded: {len(PEOPLE)} partners, {counts.clicks} clicks, "
                f"{counts.customers} customers, {counts.purchases} purchases, "
                f"{counts.refunds} refunds or chargebacks."
            )
    base = settings.base_url.rstrip("/")
    return [
        status,
        f"Open {base}/docs (start the server with: partners serve)",
        f"Admin login: {ADMIN_EMAIL} / {ADMIN_PASSWORD} (POST /auth/login)",
        f"Partner login: {MARKER_EMAIL} / {PARTNER_PASSWORD} (also ben@example.com, cyd@example.com; "
        "POST /affiliate/login, then GET /affiliate/dashboard)",
        key_line,
    ]
