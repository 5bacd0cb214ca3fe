"""Host events API (server to server, host API key with the `events:write` scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from partners.db.types import utcnow
from partners.events import service
from partners.events.batching import PurchaseBatcher
from partners.events.schemas import (
    ChargebackIn,
    PurchaseIn,
    PurchaseOut,
    RefundIn,
    RefundOut,
    SignupIn,
    SignupOut,
)
from partners.identity.deps import ApiKeyPrincipal, require_api_key
from partners.kit.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/events", tags=["events"])

HostKey = Annotated[ApiKeyPrincipal, Depends(require_api_key("events:write"))]
# Purchases are written by the process's batcher in units of work of its own (`events.batching`).
BatchedHostKey = Annotated[ApiKeyPrincipal, Depends(require_api_key("events:write", own_writes=True))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid API key"},
    403: {"description": "the API key lacks the events:write scope"},
    404: {"description": "unknown customer or purchase (problem+json naming the field)"},
    409: {"description": "the external_id was already used with another payload"},
    422: {"description": "invalid input (problem+json naming the field)"},
}


def _reply(result: service.EventResult) -> JSONResponse:
    return JSONResponse(result.body, status_code=result.status_code)


@router.post(
    "/signup",
    status_code=201,
    response_model=SignupOut,
    responses={200: {"model": SignupOut, "description": "a customer already known"}, **PROBLEMS},
)
async def signup(event: SignupIn, session: SessionDep, settings: SettingsDep, _key: HostKey) -> JSONResponse:
    """A customer signed up on the host. Replays (same external_id, same payload) get the same answer."""
    return _reply(await service.record_signup(session, settings, event, now=utcnow()))


@router.post("/purchase", status_code=201, response_model=PurchaseOut, responses=PROBLEMS)
async def purchase(event: PurchaseIn, request: Request, _key: BatchedHostKey) -> JSONResponse:
    """A customer paid: records the purchase and its commissions (up to three levels) in one transaction,
    committed before the answer (with the other purchases arriving meanwhile: `events.batching`)."""
    batcher: PurchaseBatcher = request.app.state.purchase_batcher
    return _reply(await batcher.record(event, now=utcnow()))


@router.post("/refund", status_code=201, response_model=RefundOut, responses=PROBLEMS)
async def refund(event: RefundIn, session: SessionDep, _key: HostKey) -> JSONResponse:
    """A partial or full refund; commissions are reversed pro rata."""
    return _reply(await service.record_refund(session, event, now=utcnow()))


@router.post("/chargeback", status_code=201, response_model=RefundOut, responses=PROBLEMS)
async def chargeback(event: ChargebackIn, session: SessionDep, _key: HostKey) -> JSONResponse:
    """A chargeback: everything not yet refunded is taken back, and the commissions with it."""
    return _reply(await service.record_chargeback(session, event, now=utcnow()))
