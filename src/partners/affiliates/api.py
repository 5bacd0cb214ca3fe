from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service
from partners.affiliates.deps import PartnerDep
from partners.affiliates.models import Partner
from partners.affiliates.schemas import (
    AcceptanceOut,
    AgreementAcceptIn,
    AgreementOut,
    AgreementPublishIn,
    AgreementStatusOut,
    ApplicationOut,
    BalanceOut,
    DecisionIn,
    EnrolIn,
    HostPartnerOut,
    MeOut,
    PartnerLoginIn,
    PartnerLoginOut,
    PartnerOut,
    PasswordResetConfirmIn,
    PasswordResetRequestIn,
    ReferralsOut,
    RegistrationIn,
    TierOut,
    TokenIn,
    VerifiedOut,
)
from partners.audit.service import Actor
from partners.commissions.accounts import partner_owner
from partners.identity import service as identity
from partners.identity.deps import (
    ApiKeyPrincipal,
    StaffPrincipal,
    clear_session_cookie,
    require_api_key,
    require_staff,
    set_session_cookie,
)
from partners.kit.deps import DatabaseDep, SessionDep, SettingsDep
from partners.kit.errors import NotFound
from partners.ledger.service import owner_balances
from partners.settings import Settings

router = APIRouter()

PartnerReader = Annotated[StaffPrincipal, Depends(require_staff("partners:read"))]
PartnerWriter = Annotated[StaffPrincipal, Depends(require_staff("partners:write"))]
ProgramWriter = Annotated[StaffPrincipal, Depends(require_staff("programs:write"))]
HostReader = Annotated[ApiKeyPrincipal, Depends(require_api_key("partners:read"))]
HostWriter = Annotated[ApiKeyPrincipal, Depends(require_api_key("partners:write"))]


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _staff(principal: StaffPrincipal) -> Actor:
    return Actor("staff", str(principal.user_id))


async def _partner_out(session: AsyncSession, settings: Settings, partner: Partner) -> PartnerOut:
    tier = await service.get_tier(session, partner.tier_id)
    return PartnerOut(
        id=partner.id,
        program_id=partner.program_id,
        kind=partner.kind,
        status=partner.status,
        status_reason=partner.status_reason,
        name=partner.name,
        email=partner.email,
        website=partner.website,
        audience=partner.audience,
        country=partner.country,
        referral_code=partner.referral_code,
        referral_link=service.referral_link(settings, partner),
        external_id=partner.external_id,
        parent_id=partner.parent_id,
        tier=TierOut.model_validate(tier),
        email_verified=partner.email_verified_at is not None,
        approved_at=partner.approved_at,
        created_at=partner.created_at,
    )


# --- applications ----------------------------------------------------------------------------------------


@router.post("/affiliate/register", status_code=status.HTTP_201_CREATED, tags=["affiliates"])
async def register(body: RegistrationIn, request: Request, session: SessionDep, settings: SettingsDep) -> PartnerOut:
    partner = await service.register_partner(
        session, settings, body, ip=_client_ip(request), user_agent=request.headers.get("user-agent")
    )
    return await _partner_out(session, settings, partner)


@router.get("/affiliate/verify-email", tags=["affiliates"])
async def verify_email_link(
    token: Annotated[str, Query(min_length=1, max_length=200)], database: DatabaseDep, settings: SettingsDep
) -> VerifiedOut:
    """The link in the verification email. A GET that writes, so it opens its own write unit of work."""
    async with database.write() as session:
        partner = await service.verify_email(session, settings, token)
    return VerifiedOut(email_verified=True, status=partner.status)


@router.post("/affiliate/verify-email", tags=["affiliates"])
async def verify_email(body: TokenIn, session: SessionDep, settings: SettingsDep) -> VerifiedOut:
    partner = await service.verify_email(session, settings, body.token)
    return VerifiedOut(email_verified=True, status=partner.status)


# --- login -----------------------------------------------------------------------------------------------


@router.post("/affiliate/login", tags=["affiliates"])
async def login(
    body: PartnerLoginIn, request: Request, response: Response, database: DatabaseDep, settings: SettingsDep
) -> PartnerLoginOut:
    # Its own unit of work instead of SessionDep: a rejected login must still commit its failed attempt.
    rejection: identity.LoginRejected | None = None
    async with database.write() as session:
        try:
            partner = await service.authenticate_partner(
                session, settings, email=body.email, password=body.password, ip=_client_ip(request)
            )
        except identity.LoginRejected as error:
            rejection = error
        else:
            token, csrf_token = await identity.start_session(
                session,
                settings,
                subject_kind="partner",
                subject_id=partner.id,
                ip=_client_ip(request),
                user_agent=request.headers.get("user-agent"),
            )
            partner_out = await _partner_out(session, settings, partner)
    if rejection is not None:
        raise rejection
    set_session_cookie(response, request, settings, subject_kind="partner", token=token)
    return PartnerLoginOut(
        token=token, csrf_token=csrf_token, expires_in=settings.session_max_age_seconds, partner=partner_out
    )


@router.post("/affiliate/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["affiliates"])
async def logout(
    principal: PartnerDep, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> None:
    await identity.revoke_session(session, principal.session_id)
    clear_session_cookie(response, request, settings, subject_kind="partner")


@router.get("/affiliate/me", tags=["affiliates"])
async def me(principal: PartnerDep, session: SessionDep, settings: SettingsDep) -> MeOut:
    partner = await service.get_partner(session, principal.partner_id)
    pending = await service.agreement_pending(session, partner)
    return MeOut(
        partner=await _partner_out(session, settings, partner),
        can_earn=service.earns(partner, agreement_pending=pending),
        agreement_required=pending,
    )


@router.post("/affiliate/password-reset/request", status_code=status.HTTP_202_ACCEPTED, tags=["affiliates"])
async def request_password_reset(
    body: PasswordResetRequestIn, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    await service.request_password_reset(session, settings, body.email, ip=_client_ip(request))
    return {"detail": "If this email belongs to a partner, a reset link is on its way."}


@router.post("/affiliate/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT, tags=["affiliates"])
async def confirm_password_reset(body: PasswordResetConfirmIn, session: SessionDep, settings: SettingsDep) -> None:
    await service.reset_password(session, settings, body.token, body.password)


# --- agreements ------------------------------------------------------------------------------------------


@router.get("/affiliate/agreement", tags=["affiliates"])
async def agreement(principal: PartnerDep, session: SessionDep) -> AgreementStatusOut:
    partner = await service.get_partner(session, principal.partner_id)
    current = await service.current_agreement(session, partner.program_id)
    acceptance = await service.find_acceptance(session, partner.id, current) if current else None
    return AgreementStatusOut(
        current=AgreementOut.model_validate(current) if current else None,
        accepted=acceptance is not None,
        acceptance=AcceptanceOut.model_validate(acceptance) if acceptance else None,
    )


@router.post("/affiliate/agreement/accept", tags=["affiliates"])
async def accept_agreement(
    body: AgreementAcceptIn, principal: PartnerDep, request: Request, session: SessionDep
) -> AcceptanceOut:
    partner = await service.get_partner(session, principal.partner_id)
    acceptance = await service.accept_agreement(
        session, partner, body.version, ip=_client_ip(request), user_agent=request.headers.get("user-agent")
    )
    return AcceptanceOut.model_validate(acceptance)


@router.post("/admin/programs/{program_id}/agreements", status_code=status.HTTP_201_CREATED, tags=["admin"])
async def publish_agreement(
    program_id: int, body: AgreementPublishIn, staff: ProgramWriter, session: SessionDep
) -> AgreementOut:
    published = await service.publish_agreement(
        session, program_id, title=body.title, body=body.body, actor=_staff(staff)
    )
    return AgreementOut.model_validate(published)


# --- the tree --------------------------------------------------------------------------------------------


@router.get("/affiliate/referrals", tags=["affiliates"])
async def referrals(principal: PartnerDep, session: SessionDep) -> ReferralsOut:
    partner = await service.get_partner(session, principal.partner_id)
    tree = await service.downline(session, partner, depth=service.TREE_DEPTH)
    return ReferralsOut(depth=service.TREE_DEPTH, referrals=tree)


# --- staff decisions -------------------------------------------------------------------------------------


@router.get("/admin/applications", tags=["admin"])
async def applications(
    _: PartnerReader,
    session: SessionDep,
    program_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ApplicationOut]:
    pending = await service.pending_applications(session, program_id=program_id, limit=limit, offset=offset)
    return [ApplicationOut.model_validate(partner) for partner in pending]


STATUS_ACTIONS = ("approve", "reject", "suspend", "ban", "reinstate")


def _status_route(action: str) -> Callable[..., Awaitable[PartnerOut]]:
    async def change_status(
        partner_id: int,
        staff: PartnerWriter,
        session: SessionDep,
        settings: SettingsDep,
        body: DecisionIn | None = None,
    ) -> PartnerOut:
        partner = await service.change_status(
            session, settings, partner_id, action, actor=_staff(staff), reason=(body or DecisionIn()).reason
        )
        return await _partner_out(session, settings, partner)

    change_status.__name__ = f"{action}_partner"
    return change_status


# One explicit path per action (not /{action}), so later routes under /admin/partners/{id}/ stay reachable.
for _action in STATUS_ACTIONS:
    router.add_api_route(
        f"/admin/partners/{{partner_id}}/{_action}", _status_route(_action), methods=["POST"], tags=["admin"]
    )


# --- host API --------------------------------------------------------------------------------------------


async def _host_partner_out(session: AsyncSession, settings: Settings, partner: Partner) -> HostPartnerOut:
    assert partner.external_id is not None
    balances = await owner_balances(session, partner_owner(partner.id))
    return HostPartnerOut(
        id=partner.id,
        external_id=partner.external_id,
        status=partner.status,
        email_verified=partner.email_verified_at is not None,
        referral_code=partner.referral_code,
        referral_link=service.referral_link(settings, partner),
        tier=TierOut.model_validate(await service.get_tier(session, partner.tier_id)),
        balances=[
            BalanceOut(
                kind=account.kind,
                currency=balance.currency,
                posted=balance.posted,
                available=balance.available,
                pending_debits=balance.pending_debits,
                pending_credits=balance.pending_credits,
            )
            for account, balance in balances
        ],
    )


@router.post("/partners/enrol", status_code=status.HTTP_201_CREATED, tags=["host"])
async def enrol(body: EnrolIn, key: HostWriter, session: SessionDep, settings: SettingsDep) -> HostPartnerOut:
    """Idempotent by external_id: a replay with the same payload gets the same answer (201 again)."""
    enrolment = await service.enrol_host_user(session, settings, body, actor=Actor("host", str(key.key_id)))
    return await _host_partner_out(session, settings, enrolment.partner)


@router.get("/partners/by-external-id/{external_id}", tags=["host"])
async def by_external_id(external_id: str, _: HostReader, session: SessionDep, settings: SettingsDep) -> HostPartnerOut:
    partner = await service.find_partner_by_external_id(session, external_id)
    if partner is None:
        raise NotFound(f"no partner has external id {external_id!r}", field="external_id")
    return await _host_partner_out(session, settings, partner)
