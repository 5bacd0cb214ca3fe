"""Partners: applications, email verification, staff decisions, logins, host enrolment, agreements, the tree.

Statuses, and the only transitions staff may make (anything else is a 409 naming `status`):

| action    | from                                   | to        | reason   |
|-----------|----------------------------------------|-----------|----------|
| approve   | pending                                | approved  | optional |
| reject    | pending                                | rejected  | required |
| suspend   | approved                               | suspended | required |
| ban       | pending, approved, suspended, rejected | banned    | required |
| reinstate | suspended, banned                      | approved  | optional |

Rejection is final (a rejected applicant can only be banned). A ban also ends the partner's login sessions;
a banned partner cannot log in. Pending, rejected and suspended partners may log in to see where they stand.

Approval without staff: a program with `auto_approve` approves an applicant when they verify their email, if
`auto_approve_countries` is empty or holds their country (onboarding in minutes, well inside the plan's
24 hours). Partners enrolled by the host are already the host's customers: they are approved at enrolment and
their email counts as verified, unless the program turns `host_enrol_auto_approve` off (then they wait as
pending applicants). They have no password until they follow the emailed set-password link.

The tree: `parent_id` is set once, at creation, to an existing partner, so there are no cycles; commissions
go to the partner and two levels above it (`commissions.earners.load_chain`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pycountry
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import AgreementAcceptance, AgreementVersion, Partner, PartnerToken
from partners.affiliates.schemas import EnrolIn, MoneyOut, ReferralNode, RegistrationIn
from partners.audit.service import Actor, record
from partners.commissions.models import Commission
from partners.db.types import utcnow
from partners.events.models import Purchase
from partners.identity import passwords, ratelimit
from partners.identity.service import (
    INVALID_CREDENTIALS,
    LoginRejected,
    normalise_email,
    revoke_subject_sessions,
)
from partners.kit.crypto import keyed_hash
from partners.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from partners.mail.service import queue_email
from partners.programs.models import Program, Tier, TierChange
from partners.programs.service import ensure_default_program
from partners.settings import Settings
from partners.tracking.models import Click, Customer

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
SET_PASSWORD = "set_password"
TOKEN_LIFETIMES = {
    VERIFY_EMAIL: timedelta(days=2),
    RESET_PASSWORD: timedelta(hours=1),
    SET_PASSWORD: timedelta(days=7),
}
INVALID_TOKEN = "This link is invalid, has expired or was already used."

# Short, URL-safe and easy to read aloud: no 0/o, 1/l/i.
REFERRAL_CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
REFERRAL_CODE_LENGTH = 8
TREE_DEPTH = 3


@dataclass(frozen=True, slots=True)
class Transition:
    sources: frozenset[str]
    target: str
    reason_required: bool


TRANSITIONS: dict[str, Transition] = {
    "approve": Transition(frozenset({"pending"}), "approved", reason_required=False),
    "reject": Transition(frozenset({"pending"}), "rejected", reason_required=True),
    "suspend": Transition(frozenset({"approved"}), "suspended", reason_required=True),
    "ban": Transition(frozenset({"pending", "approved", "suspended", "rejected"}), "banned", reason_required=True),
    "reinstate": Transition(frozenset({"suspended", "banned"}), "approved", reason_required=False),
}


# --- lookups ---------------------------------------------------------------------------------------------


async def get_partner(session: AsyncSession, partner_id: int) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    return partner


async def _find_partner(session: AsyncSession, condition: ColumnElement[bool]) -> Partner | None:
    found: Partner | None = await session.scalar(select(Partner).where(condition))
    return found


async def find_partner_by_email(session: AsyncSession, email: str) -> Partner | None:
    return await _find_partner(session, Partner.email == normalise_email(email))


async def find_partner_by_referral_code(session: AsyncSession, code: str) -> Partner | None:
    return await _find_partner(session, Partner.referral_code == code.strip().lower())


async def find_partner_by_external_id(session: AsyncSession, external_id: str) -> Partner | None:
    return await _find_partner(session, Partner.external_id == external_id)


async def get_tier(session: AsyncSession, tier_id: int) -> Tier:
    tier = await session.get(Tier, tier_id)
    if tier is None:
        raise NotFound(f"tier {tier_id} not found")
    return tier


def referral_link(settings: Settings, partner: Partner) -> str:
    """The partner's own link: the tracking redirect under their referral code."""
    return f"{settings.base_url.rstrip('/')}/r/{partner.referral_code}"


# --- validation ------------------------------------------------------------------------------------------


def normalise_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 code (pycountry's list), upper case."""
    candidate = code.strip().upper()
    if len(candidate) != 2 or pycountry.countries.get(alpha_2=candidate) is None:
        raise Unprocessable(f"{code!r} is not an ISO 3166-1 alpha-2 country code", field="country")
    return candidate


async def resolve_program(session: AsyncSession, settings: Settings, slug: str | None) -> Program:
    if slug is None:
        return await ensure_default_program(session, settings)
    program: Program | None = await session.scalar(select(Program).where(Program.slug == slug))
    if program is None or not program.active:
        raise Unprocessable(f"there is no open program {slug!r}", field="program")
    return program


async def entry_tier(session: AsyncSession, program: Program) -> Tier:
    """New partners start on the program's lowest-rank tier."""
    tier: Tier | None = await session.scalar(
        select(Tier).where(Tier.program_id == program.id).order_by(Tier.rank, Tier.id).limit(1)
    )
    if tier is None:
        raise Unprocessable(f"program {program.slug!r} has no tiers yet", field="program")
    return tier


async def resolve_recruiter(session: AsyncSession, program: Program, code: str | None) -> Partner | None:
    """The recruiter becomes the parent only if approved, in the same program, on a tier that may recruit."""
    if code is None or not code.strip():
        return None
    recruiter = await find_partner_by_referral_code(session, code)
    if recruiter is None or recruiter.program_id != program.id:
        raise Unprocessable("no partner of this program has this referral code", field="recruiter_code")
    if recruiter.status != "approved":
        raise Unprocessable("this recruiter is not an approved partner", field="recruiter_code")
    if not (await get_tier(session, recruiter.tier_id)).can_recruit:
        raise Unprocessable("this recruiter's tier may not recruit sub-affiliates", field="recruiter_code")
    return recruiter


async def new_referral_code(session: AsyncSession) -> str:
    while True:
        code = "".join(secrets.choice(REFERRAL_CODE_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))
        if await find_partner_by_referral_code(session, code) is None:
            return code


# --- creating partners -----------------------------------------------------------------------------------


async def register_partner(
    session: AsyncSession,
    settings: Settings,
    application: RegistrationIn,
    *,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
    rate_limited: bool = True,
) -> Partner:
    """A pending application; queues the verification email. Raises Conflict (email), Unprocessable, or
    RateLimited when the IP sent too many applications lately (each one emails the address it names; trusted
    callers such as the demo loader pass `rate_limited=False`)."""
    now = now or utcnow()
    email = normalise_email(application.email)
    client = ip or "unknown"
    if rate_limited:
        await ratelimit.ensure_allowed(
            session,
            settings,
            subject_kind=ratelimit.REGISTRATION,
            email=None,
            ip=client,
            now=now,
            message="Too many applications from your network. Try again later.",
        )
    passwords.validate_password(application.password)
    country = normalise_country(application.country)
    program = await resolve_program(session, settings, application.program)
    agreement = await _agreement_to_accept(session, program, application.accept_agreement)
    await _ensure_email_free(session, email)
    recruiter = await resolve_recruiter(session, program, application.recruiter_code)
    tier = await entry_tier(session, program)
    partner = Partner(
        program_id=program.id,
        tier_id=tier.id,
        parent_id=recruiter.id if recruiter else None,
        status="pending",
        email=email,
        name=application.name.strip(),
        password_hash=await passwords.hash_password(application.password),
        website=application.website.strip(),
        audience=application.audience.strip(),
        country=country,
        referral_code=await new_referral_code(session),
    )
    await _insert_partner(session, partner, tier, now)
    if agreement is not None:
        await _record_acceptance(session, partner, agreement, ip=ip, user_agent=user_agent, now=now)
    token = await issue_token(session, settings, partner, VERIFY_EMAIL, now)
    await _send_verification_email(session, settings, partner, token)
    if rate_limited:
        await ratelimit.record_attempt(
            session, settings, subject_kind=ratelimit.REGISTRATION, email=email, ip=client, now=now
        )
    return partner


@dataclass(frozen=True, slots=True)
class Enrolment:
    partner: Partner
    created: bool


async def enrol_host_user(
    session: AsyncSession, settings: Settings, request: EnrolIn, *, actor: Actor, now: datetime | None = None
) -> Enrolment:
    """Make a host user a partner of the default program; idempotent by `external_id`.

    The same external id with the same email, name and recruiter returns the partner made the first time;
    with anything else it is a 409. A new partner gets a set-password email."""
    now = now or utcnow()
    email = normalise_email(request.email)
    existing = await find_partner_by_external_id(session, request.external_id)
    if existing is not None:
        await _ensure_same_enrolment(session, existing, request, email)
        return Enrolment(existing, created=False)
    program = await ensure_default_program(session, settings)
    await _ensure_email_free(session, email)
    recruiter = await resolve_recruiter(session, program, request.recruiter_code)
    tier = await entry_tier(session, program)
    approve = program.host_enrol_auto_approve
    partner = Partner(
        program_id=program.id,
        tier_id=tier.id,
        parent_id=recruiter.id if recruiter else None,
        status="approved" if approve else "pending",
        email=email,
        name=request.name.strip(),
        password_hash=None,
        referral_code=await new_referral_code(session),
        external_id=request.external_id,
        email_verified_at=now,
        approved_at=now if approve else None,
    )
    await _insert_partner(session, partner, tier, now)
    await record(
        session,
        actor,
        "partner.enrol",
        subject_type="partner",
        subject_id=partner.id,
        details={"external_id": request.external_id, "status": partner.status},
    )
    token = await issue_token(session, settings, partner, SET_PASSWORD, now)
    await _send_set_password_email(session, settings, partner, token)
    return Enrolment(partner, created=True)


async def _ensure_same_enrolment(session: AsyncSession, partner: Partner, request: EnrolIn, email: str) -> None:
    recruiter_code = (request.recruiter_code or "").strip().lower()
    recruiter = await find_partner_by_referral_code(session, recruiter_code) if recruiter_code else None
    same = (
        partner.email == email
        and partner.name == request.name.strip()
        and partner.parent_id == (recruiter.id if recruiter else None)
        and (recruiter is not None or not recruiter_code)
    )
    if not same:
        raise Conflict(
            "this external_id was already enrolled with another email, name or recruiter", field="external_id"
        )


async def _ensure_email_free(session: AsyncSession, email: str) -> None:
    if await find_partner_by_email(session, email) is not None:
        raise Conflict("a partner with this email already exists", field="email")


async def _insert_partner(session: AsyncSession, partner: Partner, tier: Tier, now: datetime) -> None:
    """Insert in a savepoint, so a concurrent registration of the same email/external id is a 409."""
    try:
        async with session.begin_nested():
            session.add(partner)
            await session.flush()
    except IntegrityError as error:
        clash_on_external_id = partner.external_id is not None and (
            await find_partner_by_external_id(session, partner.external_id) is not None
        )
        field = "external_id" if clash_on_external_id else "email"
        raise Conflict(f"a partner with this {field} already exists", field=field) from error
    session.add(TierChange(partner_id=partner.id, from_tier_id=None, to_tier_id=tier.id, reason="initial"))
    await session.flush()


# --- one-time tokens -------------------------------------------------------------------------------------


def _token_hash(settings: Settings, token: str) -> str:
    return keyed_hash(settings, token, purpose="partner-token")


async def issue_token(session: AsyncSession, settings: Settings, partner: Partner, purpose: str, now: datetime) -> str:
    """A new one-time token (returned once; only its keyed hash is stored). Earlier unused ones of the same
    purpose stop working."""
    await session.execute(
        update(PartnerToken)
        .where(
            PartnerToken.partner_id == partner.id,
            PartnerToken.purpose == purpose,
            PartnerToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    session.add(
        PartnerToken(
            partner_id=partner.id,
            purpose=purpose,
            token_hash=_token_hash(settings, token),
            expires_at=now + TOKEN_LIFETIMES[purpose],
        )
    )
    await session.flush()
    return token


async def consume_token(
    session: AsyncSession, settings: Settings, token: str, purposes: set[str], now: datetime
) -> PartnerToken:
    found: PartnerToken | None = await session.scalar(
        select(PartnerToken).where(PartnerToken.token_hash == _token_hash(settings, token)).with_for_update()
    )
    if found is None or found.purpose not in purposes or found.used_at is not None or found.expires_at <= now:
        raise Unprocessable(INVALID_TOKEN, field="token")
    found.used_at = now
    await session.flush()
    return found


# --- email verification, statuses ------------------------------------------------------------------------


def auto_approves(program: Program, partner: Partner) -> bool:
    countries = {country.upper() for country in program.auto_approve_countries}
    return program.auto_approve and (not countries or partner.country in countries)


async def verify_email(
    session: AsyncSession, settings: Settings, token: str, *, now: datetime | None = None
) -> Partner:
    """Mark the email verified; approve at once when the program's auto-approve rules allow."""
    now = now or utcnow()
    used = await consume_token(session, settings, token, {VERIFY_EMAIL}, now)
    partner = await get_partner(session, used.partner_id)
    if partner.email_verified_at is None:
        partner.email_verified_at = now
    program = await session.get(Program, partner.program_id)
    if partner.status == "pending" and program is not None and auto_approves(program, partner):
        await change_status(
            session, settings, partner.id, "approve", actor=Actor.system(), reason="auto-approved", now=now
        )
    await session.flush()
    return partner


async def change_status(
    session: AsyncSession,
    settings: Settings,
    partner_id: int,
    action: str,
    *,
    actor: Actor,
    reason: str = "",
    now: datetime | None = None,
) -> Partner:
    """A staff (or auto-approval) decision: checked against TRANSITIONS, audited, the partner emailed."""
    now = now or utcnow()
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise Unprocessable(f"unknown action {action!r}", field="action")
    partner = await session.get(Partner, partner_id, with_for_update=True)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    reason = reason.strip()
    if partner.status not in transition.sources:
        raise Conflict(f"a {partner.status} partner cannot be moved by {action!r}", field="status")
    if transition.reason_required and not reason:
        raise Unprocessable(f"a reason is required to {action} a partner", field="reason")
    previous = partner.status
    partner.status = transition.target
    partner.status_reason = reason
    if transition.target == "approved" and partner.approved_at is None:
        partner.approved_at = now
    if transition.target == "banned":
        await revoke_subject_sessions(session, subject_kind="partner", subject_id=partner.id, now=now)
    await record(
        session,
        actor,
        f"partner.{action}",
        subject_type="partner",
        subject_id=partner.id,
        details={"from": previous, "to": partner.status, "reason": reason},
    )
    await _send_decision_email(session, settings, partner, action)
    await session.flush()
    return partner


async def pending_applications(
    session: AsyncSession, *, program_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[Partner]:
    """Applications waiting for staff, oldest first."""
    query = select(Partner).where(Partner.status == "pending")
    if program_id is not None:
        query = query.where(Partner.program_id == program_id)
    return list(await session.scalars(query.order_by(Partner.id).limit(limit).offset(offset)))


# --- logins and passwords --------------------------------------------------------------------------------


async def authenticate_partner(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    ip: str,
    now: datetime | None = None,
) -> Partner:
    """Check credentials under identity's login rate limit (counted per email and per IP).

    Raises RateLimited, or LoginRejected after recording the failed attempt in `session`: the caller must
    commit before answering, or the attempt is not counted. A banned partner is refused (403)."""
    now = now or utcnow()
    email = normalise_email(email)
    await ratelimit.ensure_login_allowed(session, settings, subject_kind="partner", email=email, ip=ip, now=now)
    partner = await find_partner_by_email(session, email)
    matches, new_hash = await passwords.verify_password(password, partner.password_hash if partner else None)
    if partner is None or not matches:
        await ratelimit.record_attempt(session, settings, subject_kind="partner", email=email, ip=ip, now=now)
        raise LoginRejected(INVALID_CREDENTIALS)
    if partner.status == "banned":
        raise Forbidden("this partner account is banned")
    if new_hash is not None:
        partner.password_hash = new_hash
    await ratelimit.clear_failed_logins(session, subject_kind="partner", email=email, ip=ip)
    await session.flush()
    return partner


async def request_password_reset(
    session: AsyncSession, settings: Settings, email: str, *, ip: str, now: datetime | None = None
) -> None:
    """Email a reset link if the address belongs to a partner; says nothing either way (no enumeration).
    Every request counts towards the limit per email and per IP, known address or not (RateLimited)."""
    now = now or utcnow()
    email = normalise_email(email)
    await ratelimit.ensure_allowed(
        session,
        settings,
        subject_kind=ratelimit.PASSWORD_RESET,
        email=email,
        ip=ip,
        now=now,
        message="Too many password-reset requests. Try again later.",
    )
    await ratelimit.record_attempt(
        session, settings, subject_kind=ratelimit.PASSWORD_RESET, email=email, ip=ip, now=now
    )
    partner = await find_partner_by_email(session, email)
    if partner is None or partner.status == "banned":
        return
    token = await issue_token(session, settings, partner, RESET_PASSWORD, now)
    await _send_reset_email(session, settings, partner, token)


async def reset_password(
    session: AsyncSession, settings: Settings, token: str, password: str, *, now: datetime | None = None
) -> Partner:
    """Set a new password from a reset or set-password link; every open session of the partner ends.
    Following an emailed link proves the address, so it also counts as email verification."""
    now = now or utcnow()
    passwords.validate_password(password)
    used = await consume_token(session, settings, token, {RESET_PASSWORD, SET_PASSWORD}, now)
    partner = await get_partner(session, used.partner_id)
    partner.password_hash = await passwords.hash_password(password)
    if partner.email_verified_at is None:
        partner.email_verified_at = now
    await revoke_subject_sessions(session, subject_kind="partner", subject_id=partner.id, now=now)
    await session.flush()
    return partner


# --- agreements ------------------------------------------------------------------------------------------


async def current_agreement(session: AsyncSession, program_id: int) -> AgreementVersion | None:
    found: AgreementVersion | None = await session.scalar(
        select(AgreementVersion)
        .where(AgreementVersion.program_id == program_id)
        .order_by(AgreementVersion.version.desc())
        .limit(1)
    )
    return found


async def publish_agreement(
    session: AsyncSession, program_id: int, *, title: str, body: str, actor: Actor
) -> AgreementVersion:
    """A new version (the previous highest + 1) becomes the current one; partners must accept it again."""
    program = await session.get(Program, program_id, with_for_update=True)  # serialises concurrent publishes
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    latest = await session.scalar(
        select(func.max(AgreementVersion.version)).where(AgreementVersion.program_id == program_id)
    )
    agreement = AgreementVersion(program_id=program_id, version=(latest or 0) + 1, title=title.strip(), body=body)
    session.add(agreement)
    await session.flush()
    await record(
        session,
        actor,
        "agreement.publish",
        subject_type="program",
        subject_id=program_id,
        details={"version": agreement.version, "title": agreement.title},
    )
    return agreement


async def find_acceptance(
    session: AsyncSession, partner_id: int, agreement: AgreementVersion
) -> AgreementAcceptance | None:
    found: AgreementAcceptance | None = await session.scalar(
        select(AgreementAcceptance).where(
            AgreementAcceptance.partner_id == partner_id,
            AgreementAcceptance.agreement_version_id == agreement.id,
        )
    )
    return found


async def accept_agreement(
    session: AsyncSession,
    partner: Partner,
    version: int,
    *,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> AgreementAcceptance:
    """Accept the current version (only the current one may be accepted); accepting twice keeps the first."""
    current = await current_agreement(session, partner.program_id)
    if current is None:
        raise Unprocessable("this program has no agreement to accept", field="version")
    if version != current.version:
        raise Unprocessable(f"the current agreement is version {current.version}", field="version")
    existing = await find_acceptance(session, partner.id, current)
    if existing is not None:
        return existing
    return await _record_acceptance(session, partner, current, ip=ip, user_agent=user_agent, now=now or utcnow())


async def _agreement_to_accept(session: AsyncSession, program: Program, version: int | None) -> AgreementVersion | None:
    current = await current_agreement(session, program.id)
    if current is None:
        return None
    if version != current.version:
        raise Unprocessable(
            f"accept the program's agreement: send accept_agreement={current.version}",
            field="accept_agreement",
        )
    return current


async def _record_acceptance(
    session: AsyncSession,
    partner: Partner,
    agreement: AgreementVersion,
    *,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> AgreementAcceptance:
    acceptance = AgreementAcceptance(
        partner_id=partner.id,
        agreement_version_id=agreement.id,
        accepted_at=now,
        ip=(ip or "")[:64],
        user_agent=(user_agent or "")[:500],
    )
    session.add(acceptance)
    await session.flush()
    return acceptance


async def agreement_pending(session: AsyncSession, partner: Partner) -> bool:
    """True while the program has an agreement whose current version the partner has not accepted."""
    current = await current_agreement(session, partner.program_id)
    return current is not None and await find_acceptance(session, partner.id, current) is None


def earns(partner: Partner, *, agreement_pending: bool) -> bool:
    """Approved, and the program's current agreement (if it has one) accepted."""
    return partner.status == "approved" and not agreement_pending


async def can_earn(session: AsyncSession, partner: Partner) -> bool:
    return earns(partner, agreement_pending=await agreement_pending(session, partner))


# --- the tree --------------------------------------------------------------------------------------------


async def downline(session: AsyncSession, partner: Partner, depth: int = TREE_DEPTH) -> list[ReferralNode]:
    """The sub-affiliates to `depth` levels, each with their performance and what `partner` earned
    from them."""
    levels = await _descendants_by_level(session, partner.id, depth)
    everyone = [member for level in levels for member in level]
    if not everyone:
        return []
    ids = [member.id for member in everyone]
    stats = _Stats(
        clicks=await _count_by_partner(session, Click.partner_id, ids, Click.is_bot.is_(False)),
        customers=await _count_by_partner(session, Customer.partner_id, ids),
        revenue=await _revenue_by_partner(session, ids),
        earned=await _earned_from(session, partner.id, ids),
        tiers=await _tier_names(session, {member.tier_id for member in everyone}),
    )
    nodes = {member.id: _node(member, level, stats) for level, members in enumerate(levels, 1) for member in members}
    for member in everyone:
        if member.parent_id in nodes:
            nodes[member.parent_id].children.append(nodes[member.id])
    return [nodes[member.id] for member in levels[0]]


@dataclass(frozen=True, slots=True)
class _Stats:
    clicks: dict[int, int]
    customers: dict[int, int]
    revenue: dict[int, list[MoneyOut]]
    earned: dict[int, list[MoneyOut]]
    tiers: dict[int, str]


def _node(member: Partner, level: int, stats: _Stats) -> ReferralNode:
    return ReferralNode(
        id=member.id,
        name=member.name,
        referral_code=member.referral_code,
        status=member.status,
        tier=stats.tiers.get(member.tier_id, ""),
        level=level,
        joined_at=member.created_at,
        clicks=stats.clicks.get(member.id, 0),
        customers=stats.customers.get(member.id, 0),
        revenue_referred=stats.revenue.get(member.id, []),
        commissions_earned=stats.earned.get(member.id, []),
        children=[],
    )


async def _descendants_by_level(session: AsyncSession, partner_id: int, depth: int) -> list[list[Partner]]:
    levels: list[list[Partner]] = []
    parent_ids = [partner_id]
    for _ in range(depth):
        children = list(
            await session.scalars(select(Partner).where(Partner.parent_id.in_(parent_ids)).order_by(Partner.id))
        )
        if not children:
            break
        levels.append(children)
        parent_ids = [child.id for child in children]
    return levels


async def _count_by_partner(
    session: AsyncSession, column: Any, ids: list[int], *conditions: ColumnElement[bool]
) -> dict[int, int]:
    rows = await session.execute(select(column, func.count()).where(column.in_(ids), *conditions).group_by(column))
    return {int(partner_id): int(count) for partner_id, count in rows}


def _money_by_partner(rows: Any) -> dict[int, list[MoneyOut]]:
    money: dict[int, list[MoneyOut]] = {}
    for partner_id, currency, amount in rows:
        money.setdefault(int(partner_id), []).append(MoneyOut(currency=currency, amount=int(amount or 0)))
    return money


async def _revenue_by_partner(session: AsyncSession, ids: list[int]) -> dict[int, list[MoneyOut]]:
    rows = await session.execute(
        select(Purchase.partner_id, Purchase.currency, func.sum(Purchase.amount - Purchase.refunded_amount))
        .where(Purchase.partner_id.in_(ids))
        .group_by(Purchase.partner_id, Purchase.currency)
        .order_by(Purchase.partner_id, Purchase.currency)
    )
    return _money_by_partner(rows)


async def _earned_from(session: AsyncSession, earner_id: int, ids: list[int]) -> dict[int, list[MoneyOut]]:
    """What `earner_id` earned (net of reversals) on purchases referred by each of `ids`."""
    rows = await session.execute(
        select(Purchase.partner_id, Commission.currency, func.sum(Commission.amount - Commission.reversed_amount))
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .where(Commission.partner_id == earner_id, Purchase.partner_id.in_(ids))
        .group_by(Purchase.partner_id, Commission.currency)
        .order_by(Purchase.partner_id, Commission.currency)
    )
    return _money_by_partner(rows)


async def _tier_names(session: AsyncSession, tier_ids: set[int]) -> dict[int, str]:
    rows = await session.execute(select(Tier.id, Tier.name).where(Tier.id.in_(tier_ids)))
    return {int(tier_id): name for tier_id, name in rows}


# --- emails ----------------------------------------------------------------------------------------------


def _link(settings: Settings, path: str) -> str:
    return f"{settings.base_url.rstrip('/')}{path}"


async def _send_verification_email(session: AsyncSession, settings: Settings, partner: Partner, token: str) -> None:
    link = _link(settings, f"/portal/verify-email?token={token}")
    await queue_email(
        session,
        to=partner.email,
        subject="Confirm your email for the Namaskah partner program",
        text=(
            f"Hello {partner.name},\n\nThanks for applying to the Namaskah partner program. "
            f"Confirm your email address by opening this link (valid for 48 hours):\n\n{link}\n\n"
            "If you did not apply, ignore this message.\n"
        ),
    )


async def _send_set_password_email(session: AsyncSession, settings: Settings, partner: Partner, token: str) -> None:
    link = _link(settings, f"/portal/reset-password?token={token}")
    await queue_email(
        session,
        to=partner.email,
        subject="Your Namaskah partner account is ready",
        text=(
            f"Hello {partner.name},\n\nYou are now a Namaskah partner. Your referral link: "
            f"{referral_link(settings, partner)}\n\nChoose a password for the partner portal "
            f"(link valid for 7 days):\n\n{link}\n"
        ),
    )


async def _send_reset_email(session: AsyncSession, settings: Settings, partner: Partner, token: str) -> None:
    link = _link(settings, f"/portal/reset-password?token={token}")
    await queue_email(
        session,
        to=partner.email,
        subject="Reset your Namaskah partner password",
        text=(
            f"Hello {partner.name},\n\nOpen this link to choose a new password (valid for 1 hour):\n\n"
            f"{link}\n\n"
            "If you did not ask for this, ignore this message: your password stays as it is.\n"
        ),
    )


async def _send_decision_email(session: AsyncSession, settings: Settings, partner: Partner, action: str) -> None:
    if action == "approve":
        subject = "Your Namaskah partner application is approved"
        text = (
            f"Hello {partner.name},\n\nWelcome aboard: your application is approved. Your referral link:\n\n"
            f"{referral_link(settings, partner)}\n\nLog in at {_link(settings, '/portal/login')}\n"
        )
    elif action == "reject":
        subject = "Your Namaskah partner application"
        text = (
            f"Hello {partner.name},\n\nWe are sorry: your application was not approved.\n\n"
            f"Reason: {partner.status_reason}\n"
        )
    else:
        return
    await queue_email(session, to=partner.email, subject=subject, text=text)
