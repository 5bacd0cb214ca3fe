"""Programs, tiers, negotiated rates, and the rates a partner earns at a given moment.

Rates (see `effective_rates`):
- level 1: the tier's base rate, lifted by the tier's bonus steps by the partner's referred revenue of the
  current UTC calendar month (purchases of the partner's own customers, net of refunds, in the program's
  currency, before the moment priced), never above the tier's ceiling;
- a per-partner override is the negotiated rate: its level-1 rate replaces base *and* bonus steps (no bonus on
  top of a negotiated rate); its level-2/3 rates, when set, replace the tier's;
- hold days: the tier's, plus the program's `new_partner_extra_hold_days` while the partner is younger (since
  approval) than `new_partner_period_days`.

Tier changes by staff are audited and recorded in `TierChange` (reason "admin"). Automatic promotion and
demotion (`evaluate_tiers`) pick the tier with `partners.programs.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.audit.service import Actor, record
from partners.commissions.rules import BPS_SCALE, DURATIONS, bonus_rate
from partners.db.session import dialect_insert
from partners.db.types import UTCDateTime, start_of_utc_day
from partners.events.models import Purchase
from partners.kit.errors import Conflict, NotFound, Unprocessable
from partners.programs.defaults import default_tiers
from partners.programs.models import PartnerRateOverride, Program, Tier, TierChange
from partners.programs.rules import Metrics, choose_tier, staff_only, window_days
from partners.rollups import service as rollups
from partners.rollups.models import PartnerDayRevenue
from partners.settings import Settings

DEFAULT_PROGRAM_SLUG = "namaskah"
DEFAULT_PROGRAM_NAME = "Namaskah"
DEFAULT_PROGRAM_CURRENCY = "USD"
DEFAULT_DESTINATION_HOSTS = ("namaskah.app", "www.namaskah.app")
PROMOTION_RULE_KEYS = ("window_days", "min_revenue", "min_active_customers", "min_referrals")


@dataclass(frozen=True, slots=True)
class RateCard:
    """A partner's tier and negotiated rates, before any revenue-dependent bonus."""

    tier: Tier
    override: PartnerRateOverride | None

    @property
    def level2_rate_bps(self) -> int:
        if self.override is not None and self.override.level2_rate_bps is not None:
            return self.override.level2_rate_bps
        return self.tier.level2_rate_bps

    @property
    def level3_rate_bps(self) -> int:
        if self.override is not None and self.override.level3_rate_bps is not None:
            return self.override.level3_rate_bps
        return self.tier.level3_rate_bps

    @property
    def negotiated_level1_bps(self) -> int | None:
        return self.override.base_rate_bps if self.override is not None else None


@dataclass(frozen=True, slots=True)
class EffectiveRates:
    tier_id: int
    tier_key: str
    level1_rate_bps: int
    level2_rate_bps: int
    level3_rate_bps: int
    hold_days: int
    base_rate_bps: int  # the tier's base, or the negotiated rate
    ceiling_rate_bps: int
    monthly_revenue: int  # program currency, minor units, this UTC month before `at`
    currency: str  # the program's currency (of `monthly_revenue` and the bonus thresholds)
    overridden: bool

    def rate_for_level(self, level: int) -> int:
        return {1: self.level1_rate_bps, 2: self.level2_rate_bps, 3: self.level3_rate_bps}[level]


# --- programs ------------------------------------------------------------------------------------------


async def get_program(session: AsyncSession, program_id: int) -> Program:
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    return program


async def find_program_by_slug(session: AsyncSession, slug: str) -> Program | None:
    result = await session.scalar(sa.select(Program).where(Program.slug == slug))
    return result


async def list_programs(session: AsyncSession) -> list[Program]:
    return list(await session.scalars(sa.select(Program).order_by(Program.id)))


async def find_default_program(session: AsyncSession) -> Program | None:
    """The program flagged `is_default` (None before the first one is made: `ensure_default_program`)."""
    found: Program | None = await session.scalar(
        sa.select(Program).where(Program.is_default.is_(True)).order_by(Program.id).limit(1)
    )
    return found


async def ensure_default_program(session: AsyncSession, settings: Settings) -> Program:
    """The default program: the one flagged `is_default`, else "namaskah", created once with the default
    tiers (a write unit of work). Safe when two first requests race (the inserts ignore conflicts)."""
    program = await find_default_program(session)
    if program is None:
        await session.execute(
            dialect_insert(session, Program)
            .on_conflict_do_nothing()
            .values(
                slug=DEFAULT_PROGRAM_SLUG,
                name=DEFAULT_PROGRAM_NAME,
                currency=DEFAULT_PROGRAM_CURRENCY,
                is_default=True,
                allowed_destination_hosts=list(DEFAULT_DESTINATION_HOSTS),
            )
        )
        program = await find_program_by_slug(session, DEFAULT_PROGRAM_SLUG)
        assert program is not None
    if not await list_tiers(session, program.id):
        await add_default_tiers(session, settings, program)
    return program


async def add_default_tiers(session: AsyncSession, settings: Settings, program: Program) -> list[Tier]:
    """Add the plan's default tiers (programs/defaults.py) that the program lacks."""
    for spec in default_tiers(settings):
        await session.execute(
            dialect_insert(session, Tier)
            .on_conflict_do_nothing()
            .values(
                program_id=program.id,
                **spec,
            )
        )
    return await list_tiers(session, program.id)


async def create_program(session: AsyncSession, settings: Settings, actor: Actor, **fields: Any) -> Program:
    with_default_tiers = bool(fields.pop("with_default_tiers", True))
    if await find_program_by_slug(session, fields["slug"]) is not None:
        raise Conflict(f"a program with slug {fields['slug']!r} already exists", field="slug")
    program = Program(**fields)
    session.add(program)
    await session.flush()
    if fields.get("is_default"):
        await _clear_other_defaults(session, program)
    if with_default_tiers:
        await add_default_tiers(session, settings, program)
    await record(
        session,
        actor,
        "program.created",
        subject_type="program",
        subject_id=program.id,
        details=_jsonable(fields),
    )
    return program


async def update_program(session: AsyncSession, actor: Actor, program_id: int, **changes: Any) -> Program:
    program = await get_program(session, program_id)
    before = {name: getattr(program, name) for name in changes}
    for name, value in changes.items():
        setattr(program, name, value)
    await session.flush()
    if changes.get("is_default"):
        await _clear_other_defaults(session, program)
    await record(
        session,
        actor,
        "program.updated",
        subject_type="program",
        subject_id=program.id,
        details={"before": _jsonable(before), "after": _jsonable(changes)},
    )
    return program


async def _clear_other_defaults(session: AsyncSession, program: Program) -> None:
    await session.execute(
        sa.update(Program)
        .where(Program.id != program.id, Program.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session=False)
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in values.items()}


# --- tiers ---------------------------------------------------------------------------------------------


async def list_tiers(session: AsyncSession, program_id: int) -> list[Tier]:
    result = await session.scalars(sa.select(Tier).where(Tier.program_id == program_id).order_by(Tier.rank))
    return list(result)


async def get_tier(session: AsyncSession, tier_id: int) -> Tier:
    tier = await session.get(Tier, tier_id)
    if tier is None:
        raise NotFound(f"tier {tier_id} not found", field="tier_id")
    return tier


def _check_bps(value: int, field: str) -> None:
    if not 0 <= value <= BPS_SCALE:
        raise Unprocessable("a rate is between 0 and 10000 basis points", field=field)


def validate_tier(values: dict[str, Any]) -> None:
    """The rules a tier's configuration must obey (checked on the merged values of a create or an edit)."""
    for field in ("base_rate_bps", "ceiling_rate_bps", "level2_rate_bps", "level3_rate_bps"):
        _check_bps(values[field], field)
    base, ceiling = values["base_rate_bps"], values["ceiling_rate_bps"]
    if base > ceiling:
        raise Unprocessable("the base rate cannot be above the ceiling", field="ceiling_rate_bps")
    for index, step in enumerate(values["bonus_steps"]):
        if step["threshold"] < 0:
            raise Unprocessable("a bonus threshold cannot be negative", field=f"bonus_steps.{index}.threshold")
        if not base <= step["rate_bps"] <= ceiling:
            raise Unprocessable(
                "a bonus rate lies between the base rate and the ceiling",
                field=f"bonus_steps.{index}.rate_bps",
            )
    if values["hold_days"] < 0:
        raise Unprocessable("hold days cannot be negative", field="hold_days")
    duration, duration_value = values["commission_duration"], values["commission_duration_value"]
    if duration not in DURATIONS:
        raise Unprocessable(f"the duration is one of {', '.join(DURATIONS)}", field="commission_duration")
    if duration != "lifetime" and (duration_value is None or duration_value < 1):
        raise Unprocessable(f"a {duration!r} duration needs a positive value", field="commission_duration_value")
    for key, value in values["promotion_rule"].items():
        if key not in PROMOTION_RULE_KEYS:
            raise Unprocessable(f"unknown promotion rule key {key!r}", field=f"promotion_rule.{key}")
        if value < 0 or (key == "window_days" and value < 1):
            raise Unprocessable("promotion thresholds are not negative", field=f"promotion_rule.{key}")


async def create_tier(session: AsyncSession, actor: Actor, program_id: int, **fields: Any) -> Tier:
    await get_program(session, program_id)
    fields.setdefault("commission_duration_value", None)
    if fields["commission_duration"] == "lifetime":
        fields["commission_duration_value"] = None
    validate_tier(fields)
    existing = await session.scalar(sa.select(Tier.id).where(Tier.program_id == program_id, Tier.key == fields["key"]))
    if existing is not None:
        raise Conflict(f"the program already has a tier {fields['key']!r}", field="key")
    tier = Tier(program_id=program_id, **fields)
    session.add(tier)
    await session.flush()
    await record(session, actor, "tier.created", subject_type="tier", subject_id=tier.id, details=fields)
    return tier


_TIER_FIELDS = (
    "name",
    "rank",
    "base_rate_bps",
    "ceiling_rate_bps",
    "level2_rate_bps",
    "level3_rate_bps",
    "bonus_steps",
    "hold_days",
    "can_recruit",
    "features",
    "commission_duration",
    "commission_duration_value",
    "promotion_rule",
)


async def update_tier(session: AsyncSession, actor: Actor, tier_id: int, **changes: Any) -> Tier:
    tier = await get_tier(session, tier_id)
    before = {name: getattr(tier, name) for name in _TIER_FIELDS}
    merged = {**before, **changes}
    if merged["commission_duration"] == "lifetime":
        merged["commission_duration_value"] = None
    validate_tier(merged)
    for name in _TIER_FIELDS:
        setattr(tier, name, merged[name])
    await session.flush()
    await record(
        session,
        actor,
        "tier.updated",
        subject_type="tier",
        subject_id=tier.id,
        details={"before": {k: before[k] for k in changes}, "after": changes},
    )
    return tier


# --- overrides and manual tier assignment ----------------------------------------------------------------


async def _partner(session: AsyncSession, partner_id: int) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    return partner


async def get_override(session: AsyncSession, partner_id: int) -> PartnerRateOverride | None:
    result = await session.scalar(sa.select(PartnerRateOverride).where(PartnerRateOverride.partner_id == partner_id))
    return result


async def set_override(
    session: AsyncSession,
    actor: Actor,
    partner_id: int,
    *,
    base_rate_bps: int | None,
    level2_rate_bps: int | None,
    level3_rate_bps: int | None,
    reason: str,
) -> PartnerRateOverride:
    """Create or replace the partner's negotiated rates (a rate left None falls back to the tier's)."""
    await _partner(session, partner_id)
    rates = {
        "base_rate_bps": base_rate_bps,
        "level2_rate_bps": level2_rate_bps,
        "level3_rate_bps": level3_rate_bps,
    }
    for field, value in rates.items():
        if value is not None:
            _check_bps(value, field)
    if all(value is None for value in rates.values()):
        raise Unprocessable("an override sets at least one rate", field="base_rate_bps")
    if not reason.strip():
        raise Unprocessable("a reason is required", field="reason")
    override = await get_override(session, partner_id)
    before = _override_details(override)
    if override is None:
        override = PartnerRateOverride(partner_id=partner_id)
        session.add(override)
    for field, value in rates.items():
        setattr(override, field, value)
    override.reason = reason.strip()
    override.created_by = actor.id
    await session.flush()
    await record(
        session,
        actor,
        "partner.rate_override_set",
        subject_type="partner",
        subject_id=partner_id,
        details={"before": before, "after": _override_details(override)},
    )
    return override


async def clear_override(session: AsyncSession, actor: Actor, partner_id: int, *, reason: str) -> None:
    override = await get_override(session, partner_id)
    if override is None:
        raise NotFound(f"partner {partner_id} has no rate override", field="partner_id")
    before = _override_details(override)
    await session.delete(override)
    await session.flush()
    await record(
        session,
        actor,
        "partner.rate_override_cleared",
        subject_type="partner",
        subject_id=partner_id,
        details={"before": before, "reason": reason},
    )


def _override_details(override: PartnerRateOverride | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {
        "base_rate_bps": override.base_rate_bps,
        "level2_rate_bps": override.level2_rate_bps,
        "level3_rate_bps": override.level3_rate_bps,
        "reason": override.reason,
    }


async def assign_tier(
    session: AsyncSession, actor: Actor, partner_id: int, tier_id: int, *, reason: str = ""
) -> TierChange:
    """Staff puts a partner in a tier of its program (the only way into a tier without a promotion rule)."""
    partner = await _partner(session, partner_id)
    tier = await get_tier(session, tier_id)
    if tier.program_id != partner.program_id:
        raise Unprocessable("the tier belongs to another program", field="tier_id")
    if tier.id == partner.tier_id:
        raise Conflict("the partner is already in this tier", field="tier_id")
    change = TierChange(
        partner_id=partner.id,
        from_tier_id=partner.tier_id,
        to_tier_id=tier.id,
        reason="admin",
        metrics={"note": reason} if reason else {},
    )
    partner.tier_id = tier.id
    session.add(change)
    await session.flush()
    await record(
        session,
        actor,
        "partner.tier_assigned",
        subject_type="partner",
        subject_id=partner.id,
        details={"from_tier_id": change.from_tier_id, "to_tier_id": tier.id, "reason": reason},
    )
    return change


async def tier_history(session: AsyncSession, partner_id: int) -> list[TierChange]:
    result = await session.scalars(
        sa.select(TierChange).where(TierChange.partner_id == partner_id).order_by(TierChange.id)
    )
    return list(result)


# --- rates ---------------------------------------------------------------------------------------------


async def rate_card(session: AsyncSession, partner: Partner) -> RateCard:
    """The partner's tier and override: enough for level-2/3 rates (no revenue query)."""
    row = (
        await session.execute(
            sa.select(Tier, PartnerRateOverride)
            .outerjoin(PartnerRateOverride, PartnerRateOverride.partner_id == partner.id)
            .where(Tier.id == partner.tier_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"tier {partner.tier_id} of partner {partner.id} not found", field="tier_id")
    return RateCard(tier=row[0], override=row[1])


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class RevenueWindow:
    """The month before a sale at `at`, from the daily rollups: the UTC days [first_day, last_day] of
    `rollup_partner_revenue` (the sale's own day included), less the purchases of the sale's day at or after
    `at` [at, day_end) (recorded before it with a later time: few or none). Summing the month's purchases row by
    row grew with a partner's sales, and every commissioned sale sums its partner's month; this reads at most 31
    rollup rows and the purchases of the rest of the sale's day."""

    first_day: date
    last_day: date
    at: datetime
    day_end: datetime

    @classmethod
    def before(cls, at: datetime) -> RevenueWindow:
        day_start = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(month_start(at).date(), day_start.date(), at, day_start + timedelta(days=1))

    def parameters(self) -> dict[str, Any]:
        """The bounds as the bound parameters of `month_revenue` (not `dataclasses.asdict`, which deep-copies: ~7%
        of a purchase batch's Python time in the workers, bench/README.md round 6)."""
        return {"first_day": self.first_day, "last_day": self.last_day, "at": self.at, "day_end": self.day_end}


def month_revenue(
    partner_id: Any, currency: Any, *, first_day: Any, last_day: Any, at: Any, day_end: Any
) -> sa.ColumnElement[Any]:
    """Net revenue (amount - refunded) of the partner's own customers' purchases this UTC month before the sale,
    as stored (the unit of work's own rollup deltas, not yet written, are added by `unwritten_revenue`): the
    revenue that lifts a level-1 rate. The window's bounds (`RevenueWindow`) are columns or bound parameters."""
    purchases = cast(sa.Table, Purchase.__table__)
    days = cast(sa.Table, PartnerDayRevenue.__table__)
    month = (
        sa.select(sa.func.coalesce(sa.func.sum(days.c.gross - days.c.refunded), 0))
        .where(
            days.c.partner_id == partner_id,
            days.c.currency == currency,
            days.c.day >= first_day,
            days.c.day <= last_day,
        )
        .scalar_subquery()
    )
    not_before = (
        sa.select(sa.func.coalesce(sa.func.sum(purchases.c.amount - purchases.c.refunded_amount), 0))
        .where(
            purchases.c.partner_id == partner_id,
            purchases.c.currency == currency,
            purchases.c.occurred_at >= at,
            purchases.c.occurred_at < day_end,
        )
        .scalar_subquery()
    )
    return month - not_before


def unwritten_revenue(session: AsyncSession, partner_id: int, currency: str, window: RevenueWindow) -> int:
    """The unit of work's own purchases and refunds of the window's days, counted in rollup deltas written at
    commit: what `month_revenue` does not see yet."""
    last = window.last_day + timedelta(days=1)
    return rollups.pending_revenue(session.sync_session, partner_id, currency, window.first_day, last)


_MONTH_REVENUE = sa.select(
    month_revenue(
        sa.bindparam("partner_id"),
        sa.bindparam("currency"),
        first_day=sa.bindparam("first_day", type_=sa.Date()),
        last_day=sa.bindparam("last_day", type_=sa.Date()),
        at=sa.bindparam("at", type_=UTCDateTime()),
        day_end=sa.bindparam("day_end", type_=UTCDateTime()),
    )
)


async def referred_revenue(session: AsyncSession, partner_id: int, *, currency: str, at: datetime) -> int:
    """Net revenue (amount - refunded) of the partner's own customers' purchases this UTC month before `at`."""
    currency = currency.upper()
    window = RevenueWindow.before(at)
    stored = await session.scalar(
        _MONTH_REVENUE, {"partner_id": partner_id, "currency": currency, **window.parameters()}
    )
    return int(stored or 0) + unwritten_revenue(session, partner_id, currency, window)


async def hold_days_for(session: AsyncSession, partner: Partner, tier: Tier, *, at: datetime) -> int:
    program = await get_program(session, partner.program_id)
    since = partner.approved_at or partner.created_at
    is_new = at < since + timedelta(days=program.new_partner_period_days)
    return tier.hold_days + (program.new_partner_extra_hold_days if is_new else 0)


async def effective_rates(session: AsyncSession, partner: Partner, *, currency: str, at: datetime) -> EffectiveRates:
    """The rates `partner` earns at `at`. `currency` is the sale's; the bonus thresholds are amounts in the
    program's currency, so only revenue in that currency counts towards them (no FX conversion)."""
    card = await rate_card(session, partner)
    program = await get_program(session, partner.program_id)
    tier = card.tier
    negotiated = card.negotiated_level1_bps
    revenue = await referred_revenue(session, partner.id, currency=program.currency, at=at)
    if negotiated is not None:
        level1 = negotiated
    else:
        level1 = bonus_rate(tier.base_rate_bps, tier.ceiling_rate_bps, tier.bonus_steps, revenue)
    return EffectiveRates(
        tier_id=tier.id,
        tier_key=tier.key,
        level1_rate_bps=level1,
        level2_rate_bps=card.level2_rate_bps,
        level3_rate_bps=card.level3_rate_bps,
        hold_days=await hold_days_for(session, partner, tier, at=at),
        base_rate_bps=negotiated if negotiated is not None else tier.base_rate_bps,
        ceiling_rate_bps=tier.ceiling_rate_bps,
        monthly_revenue=revenue,
        currency=program.currency,
        overridden=card.override is not None,
    )


# --- automatic promotion and demotion ----------------------------------------------------------------------


def rule_window(now: datetime, days: int) -> tuple[date, date]:
    """A promotion rule's window at `now`: the `days` UTC days ending with today, today included."""
    last = now.astimezone(UTC).date()
    return last - timedelta(days=days - 1), last


def _day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return start_of_utc_day(first), start_of_utc_day(last + timedelta(days=1))


async def paying_customers(
    session: AsyncSession, partner_ids: Iterable[int], first: date, last: date
) -> dict[int, int]:
    """Distinct customers with a purchase not wholly refunded on the days [first, last], from the purchases."""
    start, end = _day_bounds(first, last)
    rows = await session.execute(
        sa.select(Purchase.partner_id, sa.func.count(sa.distinct(Purchase.customer_id)))
        .where(
            Purchase.partner_id.in_(list(partner_ids)),
            Purchase.occurred_at >= start,
            Purchase.occurred_at < end,
            Purchase.refunded_amount < Purchase.amount,
        )
        .group_by(Purchase.partner_id)
    )
    return {partner: int(count) for partner, count in rows if partner is not None}


async def _new_referrals(session: AsyncSession, partners: sa.Select[Any], first: date, last: date) -> dict[int, int]:
    start, end = _day_bounds(first, last)
    rows = await session.execute(
        sa.select(Partner.parent_id, sa.func.count())
        .where(
            Partner.parent_id.in_(partners),
            Partner.status == "approved",
            Partner.created_at >= start,
            Partner.created_at < end,
        )
        .group_by(Partner.parent_id)
    )
    return {parent: int(count) for parent, count in rows if parent is not None}


async def window_metrics(
    session: AsyncSession,
    program: Program,
    *,
    first: date,
    last: date,
    partner_id: int | None = None,
) -> dict[int, Metrics]:
    """Each partner's metrics over the UTC days [first, last]: net referred revenue in the program's currency,
    distinct paying customers (a purchase not wholly refunded, any currency), new approved direct
    sub-affiliates. Revenue and customers are read from the daily rollups (a few rows per day, whatever the
    partner's volume: counting a large partner's purchases was most of its dashboard's time, bench/README.md
    round 11); customers from the purchases only for a partner whose histogram cannot answer."""
    partners = sa.select(Partner.id).where(Partner.program_id == program.id)
    if partner_id is not None:
        partners = partners.where(Partner.id == partner_id)
    revenue = await rollups.net_revenue_by_partner(session, partners, program.currency, first, last)
    customers, unknown = await rollups.buyers_by_partner(session, partners, first, last)
    if unknown:
        customers.update(await paying_customers(session, unknown, first, last))
    referrals = await _new_referrals(session, partners, first, last)
    return {
        owner: Metrics(revenue.get(owner, 0), customers.get(owner, 0), referrals.get(owner, 0))
        for owner in revenue.keys() | customers.keys() | referrals.keys()
    }


def _rule_windows(tiers: list[Tier]) -> set[int]:
    return {window_days(tier.promotion_rule) for tier in tiers if tier.promotion_rule}


async def _admin_floors(session: AsyncSession, partner_ids: list[int]) -> dict[int, int]:
    """Each partner's latest staff-assigned tier id."""
    latest = (
        sa.select(sa.func.max(TierChange.id))
        .where(TierChange.reason == "admin", TierChange.partner_id.in_(partner_ids))
        .group_by(TierChange.partner_id)
    )
    rows = await session.execute(
        sa.select(TierChange.partner_id, TierChange.to_tier_id).where(TierChange.id.in_(latest))
    )
    return {partner_id: tier_id for partner_id, tier_id in rows.all()}


async def _partners_to_evaluate(session: AsyncSession, program_id: int, period_key: str) -> list[Partner]:
    done_this_period = sa.select(TierChange.partner_id).where(
        TierChange.period_key == period_key, TierChange.reason.in_(("promotion", "demotion"))
    )
    result = await session.scalars(
        sa.select(Partner)
        .where(
            Partner.program_id == program_id,
            Partner.status == "approved",
            Partner.id.not_in(done_this_period),
        )
        .order_by(Partner.id)
    )
    return list(result)


def _metrics_details(currency: str, by_window: dict[int, Metrics]) -> dict[str, Any]:
    return {
        "currency": currency,
        "windows": {
            str(days): {
                "revenue": metrics.revenue,
                "active_customers": metrics.active_customers,
                "referrals": metrics.referrals,
            }
            for days, metrics in sorted(by_window.items())
        },
    }


async def _evaluate_program(
    session: AsyncSession, program: Program, *, now: datetime, period_key: str
) -> list[TierChange]:
    tiers = await list_tiers(session, program.id)
    if not tiers:
        return []
    partners = await _partners_to_evaluate(session, program.id, period_key)
    if not partners:
        return []
    by_id = {tier.id: tier for tier in tiers}
    windows = {}
    for days in _rule_windows(tiers):
        first, last = rule_window(now, days)
        windows[days] = await window_metrics(session, program, first=first, last=last)
    floors = await _admin_floors(session, [partner.id for partner in partners])
    changes: list[TierChange] = []
    for partner in partners:
        current = by_id.get(partner.tier_id)
        if current is None:
            continue
        metrics = {days: found.get(partner.id, Metrics(0, 0, 0)) for days, found in windows.items()}
        floor_id = floors.get(partner.id)
        target = choose_tier(tiers, current, metrics, by_id.get(floor_id) if floor_id else None)
        if target.id == current.id:
            continue
        change = TierChange(
            partner_id=partner.id,
            from_tier_id=current.id,
            to_tier_id=target.id,
            reason="promotion" if target.rank > current.rank else "demotion",
            metrics=_metrics_details(program.currency, metrics),
            period_key=period_key,
        )
        partner.tier_id = target.id
        session.add(change)
        changes.append(change)
    await session.flush()
    return changes


async def evaluate_tiers(session: AsyncSession, *, now: datetime, period_key: str | None = None) -> list[TierChange]:
    """Promote and demote every approved partner by its tiers' rules (see `partners.programs.rules`).

    Idempotent per period: a partner already promoted or demoted under `period_key` (default: the UTC day of
    `now`) is left alone until the next period, so a re-run or a second worker changes nothing.
    """
    key = period_key or now.astimezone(UTC).strftime("%Y-%m-%d")
    changes: list[TierChange] = []
    for program in await list_programs(session):
        changes.extend(await _evaluate_program(session, program, now=now, period_key=key))
    return changes


@dataclass(frozen=True, slots=True)
class TierProgress:
    """Where a partner stands: its tier, the next tier it can reach on its own, and its metrics over the next
    tier's window against that tier's rule."""

    current: Tier
    next_tier: Tier | None
    metrics: Metrics | None
    requirements: dict[str, int]


async def tier_progress(session: AsyncSession, partner: Partner, *, now: datetime) -> TierProgress:
    tiers = await list_tiers(session, partner.program_id)
    current = next(tier for tier in tiers if tier.id == partner.tier_id)
    lowest_rank = min(tier.rank for tier in tiers)
    higher = [t for t in tiers if t.rank > current.rank and not staff_only(t, lowest_rank)]
    if not higher or staff_only(current, lowest_rank):
        return TierProgress(current=current, next_tier=None, metrics=None, requirements={})
    upcoming = min(higher, key=lambda tier: tier.rank)
    program = await get_program(session, partner.program_id)
    first, last = rule_window(now, window_days(upcoming.promotion_rule))
    found = await window_metrics(session, program, first=first, last=last, partner_id=partner.id)
    return TierProgress(
        current=current,
        next_tier=upcoming,
        metrics=found.get(partner.id, Metrics(0, 0, 0)),
        requirements=dict(upcoming.promotion_rule),
    )
