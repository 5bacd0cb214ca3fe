"""Partner authentication: the partner's login session (bearer token for the API, cookie + CSRF for pages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from partners.affiliates.models import Partner
from partners.identity.deps import CurrentSession, current_session
from partners.kit.errors import Forbidden


@dataclass(frozen=True, slots=True)
class PartnerPrincipal:
    partner_id: int
    program_id: int
    status: str
    session_id: int
    # Held for the request: the session's identity map keeps rows only while something refers to them, so a
    # route that loads the partner again (`get_partner`) finds this row there instead of querying again.
    row: Partner = field(repr=False, compare=False)


async def require_partner(
    current: Annotated[CurrentSession[Partner], Depends(current_session("partner", Partner))],
) -> PartnerPrincipal:
    """Any logged-in partner, whatever their status (a pending applicant may still see their status)."""
    partner = current.subject
    if partner.status == "banned":
        raise Forbidden("this partner account is banned")
    return PartnerPrincipal(partner.id, partner.program_id, partner.status, current.auth_session.id, partner)


async def require_approved_partner(
    principal: Annotated[PartnerPrincipal, Depends(require_partner)],
) -> PartnerPrincipal:
    if principal.status != "approved":
        raise Forbidden(f"this partner account is {principal.status}, not approved")
    return principal


PartnerDep = Annotated[PartnerPrincipal, Depends(require_partner)]
ApprovedPartnerDep = Annotated[PartnerPrincipal, Depends(require_approved_partner)]
