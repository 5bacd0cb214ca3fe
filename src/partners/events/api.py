"""Host events API (server to server, host API key with the `events:write` scope)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partners.db.types import utcnow
from partners.events import service
from partners.events.batching import PurchaseBatcher
from partners.events.schemas import (
    ChargebackIn,
    PurchaseIn,
    PurchaseOut,
    PurchasesIn,
    PurchasesOut,
    RefundIn,
    RefundOut,
    SignupIn,
    SignupOut,
)
from partners.identity.deps import ApiKeyPrincipal, require_api_key
from partners.kit.deps import SessionDep, SettingsDep
from partners.kit.errors import AppError
from partners.kit.problems import handle_app_error, handle_validation_error

router = APIRouter(prefix="/events", tags=["events"])

HostKey = Annotated[ApiKeyPrincipal, Depends(require_api_key("events:write"))]
# Purchases are written by the process's batcher in units of work of its own (`events.batching`).
check_batched_host_key = require_api_key("events:write", own_writes=True)
BatchedHostKey = Annotated[ApiKeyPrincipal, Depends(check_batched_host_key)]

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
    return await _record_purchase(request, event)


async def _record_purchase(request: Request, event: PurchaseIn) -> JSONResponse:
    batcher: PurchaseBatcher = request.app.state.purchase_batcher
    return _reply(await batcher.record(event, now=utcnow()))


class PurchaseFastPath:
    """Answers `POST /events/purchase` with a JSON body before FastAPI's routing and dependency solving, which
    were ~80 µs of a purchase event's ~140 µs in the HTTP layer (bench/README.md, round 8). The same steps as
    the `purchase` route, in FastAPI's order — the body decoded (422), the API key checked (401, 403), the
    event validated (422), recorded — with the same answers and problems (tests/events/test_purchase_fast_path.py
    sends every case both ways). Inside the request-id, access-log and metrics middleware; any other request,
    and a purchase with another or no content type or an empty body, goes on to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        routes = (route for route in router.routes if isinstance(route, APIRoute))
        self.route = next(route for route in routes if route.endpoint is purchase)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_json_post(scope, self.route.path):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        body = await request.body()
        if not body:
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = self.route  # the access log's and the metrics' route
        try:
            response = await _answer_purchase(request, body)
        except AppError as error:
            response = await handle_app_error(request, error)
        except RequestValidationError as error:
            response = await handle_validation_error(request, error)
        await response(scope, receive, send)


def _is_json_post(scope: Scope, path: str) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != path:
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever comes next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer_purchase(request: Request, body: bytes) -> JSONResponse:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:  # as FastAPI words it
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error", "input": {}}]
        ) from None
    await check_batched_host_key(request)
    try:
        event = PurchaseIn.model_validate(data, from_attributes=True)  # as FastAPI validates a body
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        ) from None
    return await _record_purchase(request, event)


@router.post("/purchases", response_model=PurchasesOut, responses=PROBLEMS)
async def purchases(batch: PurchasesIn, request: Request, _key: BatchedHostKey) -> JSONResponse:
    """Up to 100 purchases in one request, each recorded as `POST /events/purchase` records it (idempotent by its
    own external_id, committed before the answer); they reach the batcher together. 200 with one result per
    event, in order. An input error anywhere rejects the whole request (422, nothing recorded); a failure that
    is not the event's own (the database gone) answers 5xx, and the request can be sent again as it was."""
    batcher: PurchaseBatcher = request.app.state.purchase_batcher
    now = utcnow()
    outcomes = await asyncio.gather(*(batcher.record(event, now=now) for event in batch.events), return_exceptions=True)
    results = [
        _purchase_result(index, event, outcome, request.url.path)
        for index, (event, outcome) in enumerate(zip(batch.events, outcomes, strict=True))
    ]
    return JSONResponse({"results": results})


def _purchase_result(
    index: int, event: PurchaseIn, outcome: service.EventResult | BaseException, path: str
) -> dict[str, Any]:
    if isinstance(outcome, service.EventResult):
        return {
            "external_id": event.external_id,
            "status": outcome.status_code,
            "purchase": outcome.body,
            "problem": None,
        }
    if not isinstance(outcome, AppError):
        raise outcome
    problem = outcome.to_problem(instance=path)
    for error in problem.get("errors", []):
        error["field"] = f"events.{index}.{error['field']}"
    return {"external_id": event.external_id, "status": outcome.status, "purchase": None, "problem": problem}


@router.post("/refund", status_code=201, response_model=RefundOut, responses=PROBLEMS)
async def refund(event: RefundIn, session: SessionDep, _key: HostKey) -> JSONResponse:
    """A partial or full refund; commissions are reversed pro rata."""
    return _reply(await service.record_refund(session, event, now=utcnow()))


@router.post("/chargeback", status_code=201, response_model=RefundOut, responses=PROBLEMS)
async def chargeback(event: ChargebackIn, session: SessionDep, _key: HostKey) -> JSONResponse:
    """A chargeback: everything not yet refunded is taken back, and the commissions with it."""
    return _reply(await service.record_chargeback(session, event, now=utcnow()))
