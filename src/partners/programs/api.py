"""Admin API for programs, tiers, negotiated rates and tier assignment. Every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from partners.affiliates.models import Partner
from partners.audit.service import Actor
from partners.db.types import utcnow
from partners.identity.deps import StaffPrincipal, require_staff
from partners.kit.deps import SessionDep, SettingsDep
from partners.kit.errors import NotFound
from partners.programs import service
from partners.programs.schemas import (
    EffectiveRatesOut,
    OverrideIn,
    OverrideOut,
    ProgramCreate,
    ProgramOut,
    ProgramUpdate,
    TierAssignIn,
    TierChangeOut,
    TierCreate,
    TierOut,
    TierUpdate,
)

router = APIRouter(prefix="/admin", tags=["programs"])

ProgramReader = Annotated[StaffPrincipal, Depends(require_staff("programs:read"))]
ProgramWriter = Annotated[StaffPrincipal, Depends(require_staff("programs:write"))]
PartnerReader = Annotated[StaffPrincipal, Depends(require_staff("partners:read"))]


def _actor(staff: StaffPrincipal) -> Actor:
    return Actor("staff", str(staff.user_id))


@router.get("/programs")
async def list_programs(session: SessionDep, _staff: ProgramReader) -> list[ProgramOut]:
    return [ProgramOut.model_validate(program) for program in await service.list_programs(session)]


@router.post("/programs", status_code=status.HTTP_201_CREATED)
async def create_program(
    body: ProgramCreate, session: SessionDep, settings: SettingsDep, staff: ProgramWriter
) -> ProgramOut:
    fields = body.model_dump(exclude_none=True)
    fields["currency"] = body.currency.upper()
    program = await service.create_program(session, settings, _actor(staff), **fields)
    return ProgramOut.model_validate(program)


@router.get("/programs/{program_id}")
async def get_program(program_id: int, session: SessionDep, _staff: ProgramReader) -> ProgramOut:
    return ProgramOut.model_validate(await service.get_program(session, program_id))


@router.patch("/programs/{program_id}")
async def update_program(program_id: int, body: ProgramUpdate, session: SessionDep, staff: ProgramWriter) -> ProgramOut:
    program = await service.update_program(session, _actor(staff), program_id, **body.changes())
    return ProgramOut.model_validate(program)


@router.get("/programs/{program_id}/tiers")
async def list_tiers(program_id: int, session: SessionDep, _staff: ProgramReader) -> list[TierOut]:
    await service.get_program(session, program_id)
    return [TierOut.model_validate(tier) for tier in await service.list_tiers(session, program_id)]


@router.post("/programs/{program_id}/tiers", status_code=status.HTTP_201_CREATED)
async def create_tier(program_id: int, body: TierCreate, session: SessionDep, staff: ProgramWriter) -> TierOut:
    tier = await service.create_tier(session, _actor(staff), program_id, **body.values())
    return TierOut.model_validate(tier)


@router.patch("/tiers/{tier_id}")
async def update_tier(tier_id: int, body: TierUpdate, session: SessionDep, staff: ProgramWriter) -> TierOut:
    tier = await service.update_tier(session, _actor(staff), tier_id, **body.changes())
    return TierOut.model_validate(tier)


async def _partner(session: SessionDep, partner_id: int) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    return partner


@router.get("/partners/{partner_id}/rates")
async def partner_rates(partner_id: int, session: SessionDep, _staff: PartnerReader) -> EffectiveRatesOut:
    partner = await _partner(session, partner_id)
    program = await service.get_program(session, partner.program_id)
    rates = await service.effective_rates(session, partner, currency=program.currency, at=utcnow())
    return EffectiveRatesOut(
        tier_id=rates.tier_id,
        tier_key=rates.tier_key,
        level1_rate_bps=rates.level1_rate_bps,
        level2_rate_bps=rates.level2_rate_bps,
        level3_rate_bps=rates.level3_rate_bps,
        hold_days=rates.hold_days,
        base_rate_bps=rates.base_rate_bps,
        ceiling_rate_bps=rates.ceiling_rate_bps,
        monthly_revenue=rates.monthly_revenue,
        currency=rates.currency,
        overridden=rates.overridden,
    )


@router.get("/partners/{partner_id}/rate-override")
async def get_override(partner_id: int, session: SessionDep, _staff: PartnerReader) -> OverrideOut:
    await _partner(session, partner_id)
    override = await service.get_override(session, partner_id)
    if override is None:
        raise NotFound(f"partner {partner_id} has no rate override", field="partner_id")
    return OverrideOut.model_validate(override)


@router.put("/partners/{partner_id}/rate-override")
async def set_override(partner_id: int, body: OverrideIn, session: SessionDep, staff: ProgramWriter) -> OverrideOut:
    override = await service.set_override(
        session,
        _actor(staff),
        partner_id,
        base_rate_bps=body.base_rate_bps,
        level2_rate_bps=body.level2_rate_bps,
        level3_rate_bps=body.level3_rate_bps,
        reason=body.reason,
    )
    return OverrideOut.model_validate(override)


@router.delete("/partners/{partner_id}/rate-override", status_code=status.HTTP_204_NO_CONTENT)
async def clear_override(
    partner_id: int,
    session: SessionDep,
    staff: ProgramWriter,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> None:
    await service.clear_override(session, _actor(staff), partner_id, reason=reason)


@router.put("/partners/{partner_id}/tier")
async def assign_tier(partner_id: int, body: TierAssignIn, session: SessionDep, staff: ProgramWriter) -> TierChangeOut:
    change = await service.assign_tier(session, _actor(staff), partner_id, body.tier_id, reason=body.reason)
    return TierChangeOut.model_validate(change)


@router.get("/partners/{partner_id}/tier-history")
async def tier_history(partner_id: int, session: SessionDep, _staff: PartnerReader) -> list[TierChangeOut]:
    await _partner(session, partner_id)
    return [TierChangeOut.model_validate(change) for change in await service.tier_history(session, partner_id)]
