"""Tracking routes: the partner's links and coupons, the admin's coupons and re-assignment, and `/r/{code}`.

`/r/{code}` is answered by `serve_redirect`, which the app calls before any of its middleware and routing
(measured: they cost more than the redirect itself): a cached link lookup, a click handed to the in-process
recorder, a 302 sent as two bare ASGI messages. HEAD (link-preview bots) gets the same redirect without a click
id, a cookie or a recorded click. The same handler is also a plain route (`RedirectRoute`), for an app that
does not call the fast path first. The click id doubles as the response's request id.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from partners.affiliates.deps import ApprovedPartnerDep, PartnerDep, PartnerPrincipal
from partners.audit.service import Actor
from partners.db.session import Database
from partners.db.types import utcnow
from partners.identity.deps import require_staff
from partners.identity.principals import StaffPrincipal
from partners.kit.deps import SessionDep, SettingsDep
from partners.kit.logging import get_logger
from partners.kit.middleware import HTTP_LATENCY, HTTP_REQUESTS
from partners.settings import Settings
from partners.tracking import service
from partners.tracking.models import TrackingLink
from partners.tracking.recorder import ClickEvent, ClickRecorder
from partners.tracking.schemas import (
    CouponCreate,
    CouponOut,
    CustomerOut,
    LinkCreate,
    LinkOut,
    LinkPage,
    LinkStats,
    LinkWithStats,
    ReassignIn,
)

CLICK_COOKIE = "np_click"
REDIRECT_PREFIX = "/r/"
REDIRECT_ROUTE = "/r/{code}"
MAX_CODE_LENGTH = 64
COUNTRY_HEADERS = (b"cf-ipcountry", b"x-country")  # raw ASGI header names, asked in this order
UNKNOWN_COUNTRIES = frozenset({"XX", "T1"})  # Cloudflare: unknown, Tor

router = APIRouter()
logger = get_logger(__name__)

PartnersWriter = Annotated[StaffPrincipal, Depends(require_staff("partners:write"))]
PartnersReader = Annotated[StaffPrincipal, Depends(require_staff("partners:read"))]


def _staff_actor(staff: StaffPrincipal) -> Actor:
    return Actor("staff", str(staff.user_id))


def _link_out(settings: Settings, link: TrackingLink, referral_code: str) -> LinkOut:
    return LinkOut(**_link_fields(settings, link, referral_code))


def _link_fields(settings: Settings, link: TrackingLink, referral_code: str) -> dict[str, Any]:
    target = service.redirect_target(link.destination_url, service.link_utm(link), referral_code)
    return {
        "id": link.id,
        "code": link.code,
        "short_url": service.short_url(settings, link.code),
        "destination_url": link.destination_url,
        "final_url_preview": target.preview(),
        "utm_source": link.utm_source,
        "utm_medium": link.utm_medium,
        "utm_campaign": link.utm_campaign,
        "utm_term": link.utm_term,
        "utm_content": link.utm_content,
        "sub_ids": dict(link.sub_ids),
        "active": link.active,
        "created_at": link.created_at,
    }


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# --- partner -------------------------------------------------------------------------------------------


@router.post("/affiliate/links/generate", status_code=status.HTTP_201_CREATED, tags=["affiliate"])
async def generate_link(
    body: LinkCreate,
    request: Request,
    partner: ApprovedPartnerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> LinkOut:
    link = await service.create_link(session, partner_id=partner.partner_id, data=body)
    service.link_cache(request.app.state).discard(link.code)
    return _link_out(settings, link, partner.row.referral_code)


@router.post("/affiliate/links/{link_id}/deactivate", tags=["affiliate"])
async def deactivate_link(
    link_id: int, request: Request, partner: PartnerDep, session: SessionDep, settings: SettingsDep
) -> LinkOut:
    """Switch one of your links off: it answers 404 within 30 s; its history stays."""
    return await _switch_link(request, session, settings, partner, link_id, active=False)


@router.post("/affiliate/links/{link_id}/activate", tags=["affiliate"])
async def activate_link(
    link_id: int, request: Request, partner: ApprovedPartnerDep, session: SessionDep, settings: SettingsDep
) -> LinkOut:
    """Switch one of your links on again."""
    return await _switch_link(request, session, settings, partner, link_id, active=True)


async def _switch_link(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    partner: PartnerPrincipal,
    link_id: int,
    *,
    active: bool,
) -> LinkOut:
    link = await service.set_link_active(session, partner_id=partner.partner_id, link_id=link_id, active=active)
    service.link_cache(request.app.state).discard(link.code)  # this process at once; the others within the cache's 30 s
    return _link_out(settings, link, partner.row.referral_code)


@router.get("/affiliate/links", tags=["affiliate"])
async def list_links(
    partner: PartnerDep,
    session: SessionDep,
    settings: SettingsDep,
    start: Annotated[datetime | None, Query(description="period start (inclusive), UTC if no zone")] = None,
    end: Annotated[datetime | None, Query(description="period end (exclusive), UTC if no zone")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LinkPage:
    items, total = await service.list_links(
        session,
        partner_id=partner.partner_id,
        start=_as_utc(start),
        end=_as_utc(end),
        limit=limit,
        offset=offset,
    )
    referral_code = partner.row.referral_code
    return LinkPage(
        items=[_with_stats(settings, link, referral_code, stats) for link, stats in items],
        total=total,
        limit=limit,
        offset=offset,
    )


def _with_stats(settings: Settings, link: TrackingLink, referral_code: str, stats: LinkStats) -> LinkWithStats:
    """Validated once (not as a LinkOut first, then dumped and validated again: bench/README.md, round 14)."""
    return LinkWithStats(**_link_fields(settings, link, referral_code), stats=stats)


@router.get("/affiliate/coupons", tags=["affiliate"])
async def my_coupons(partner: PartnerDep, session: SessionDep) -> list[CouponOut]:
    coupons = await service.list_coupons(session, partner.partner_id)
    return [CouponOut.model_validate(coupon) for coupon in coupons]


# --- staff ---------------------------------------------------------------------------------------------


@router.post("/admin/coupons", status_code=status.HTTP_201_CREATED, tags=["admin"])
async def create_coupon(body: CouponCreate, staff: PartnersWriter, session: SessionDep) -> CouponOut:
    coupon = await service.create_coupon(session, _staff_actor(staff), partner_id=body.partner_id, code=body.code)
    return CouponOut.model_validate(coupon)


@router.post("/admin/coupons/{code}/deactivate", tags=["admin"])
async def deactivate_coupon(code: str, staff: PartnersWriter, session: SessionDep) -> CouponOut:
    """Switch a coupon off: it no longer attributes new customers (those it brought stay bound). Audited."""
    coupon = await service.set_coupon_active(session, _staff_actor(staff), code=code, active=False)
    return CouponOut.model_validate(coupon)


@router.post("/admin/coupons/{code}/activate", tags=["admin"])
async def activate_coupon(code: str, staff: PartnersWriter, session: SessionDep) -> CouponOut:
    coupon = await service.set_coupon_active(session, _staff_actor(staff), code=code, active=True)
    return CouponOut.model_validate(coupon)


@router.get("/admin/partners/{partner_id}/coupons", tags=["admin"])
async def partner_coupons(partner_id: int, staff: PartnersReader, session: SessionDep) -> list[CouponOut]:
    return [CouponOut.model_validate(coupon) for coupon in await service.list_coupons(session, partner_id)]


@router.post("/admin/customers/{external_id}/reassign", tags=["admin"])
async def reassign_customer(
    external_id: str, body: ReassignIn, staff: PartnersWriter, session: SessionDep
) -> CustomerOut:
    customer = await service.reassign_customer(
        session,
        _staff_actor(staff),
        external_id=external_id,
        partner_id=body.partner_id,
        reason=body.reason,
        now=utcnow(),
    )
    return CustomerOut.model_validate(customer)


# --- the redirect --------------------------------------------------------------------------------------


async def _resolve(state: State, code: str) -> service.ResolvedLink | None:
    cache = service.link_cache(state)
    cached = cache.get(code)
    if cached is not service.MISS:
        return cached
    database: Database = state.database
    async with database.read() as session:
        resolved = await service.resolve_link(session, code)
    if resolved is None:
        async with database.write() as session:
            if await service.ensure_referral_link(session, code):
                resolved = await service.resolve_link(session, code)
    cache.put(code, resolved)
    return resolved


# The request headers a click keeps, found in one pass over the raw header list (names come lower-case).
_CLICK_HEADERS = frozenset({b"user-agent", b"referer", b"cookie", *COUNTRY_HEADERS})


def _click_headers(scope: Scope) -> dict[bytes, str]:
    """The first value of each header a click keeps, decoded as Starlette does (latin-1)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _CLICK_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _country(headers: dict[bytes, str]) -> str | None:
    for header in COUNTRY_HEADERS:
        value = headers.get(header, "").strip().upper()
        if len(value) == 2 and value.isalpha() and value not in UNKNOWN_COUNTRIES:
            return value
    return None


def _previous_click_id(headers: dict[bytes, str]) -> str | None:
    cookie = headers.get(b"cookie")
    value = cookie_parser(cookie).get(CLICK_COOKIE) if cookie else None
    return value if value and len(value) == 32 and value.isalnum() else None


def _click_cookie(click_id: str, max_age: int, secure: bool) -> str:
    cookie = f"{CLICK_COOKIE}={click_id}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
    return f"{cookie}; Secure" if secure else cookie


async def answer_redirect(state: State, scope: Scope, receive: Receive, send: Send, code: str) -> int:
    """Answer `GET|HEAD /r/{code}` on the bare ASGI interface; returns the status sent.

    A click costs the redirect a cached link lookup, a keyed hash of the IP, a list append (the recorder writes
    it later) and the 302's two messages — no Request, Headers or Response objects (bench/README.md, round 10).
    """
    code = code.lower()
    link = await _resolve(state, code) if len(code) <= MAX_CODE_LENGTH else None
    if link is None:
        await HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers={"X-Request-ID": uuid.uuid4().hex})(
            scope, receive, send
        )
        return 404
    if scope["method"] == "HEAD":
        preview = {"Location": link.target.preview(), "X-Request-ID": uuid.uuid4().hex}
        await Response(status_code=302, headers=preview)(scope, receive, send)
        return 302
    settings: Settings = state.settings
    recorder: ClickRecorder = state.click_recorder
    click_id = secrets.token_hex(16)
    found = _click_headers(scope)
    client = scope.get("client")
    recorder.record(
        ClickEvent(
            click_id=click_id,
            link_id=link.link_id,
            partner_id=link.partner_id,
            occurred_at=utcnow(),
            ip_hash=service.hash_ip(settings, client[0] if client else ""),
            user_agent=found.get(b"user-agent", ""),
            referrer=found.get(b"referer", ""),
            country=_country(found),
            previous_click_id=_previous_click_id(found),
        )
    )
    secure = settings.base_url.startswith("https://")
    headers = [
        (b"location", link.target.location(click_id).encode("latin-1")),
        (b"set-cookie", _click_cookie(click_id, link.cookie_max_age, secure).encode("latin-1")),
        (b"cache-control", b"no-store"),
        (b"x-request-id", click_id.encode()),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 302, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    return 302


class RedirectRoute:
    """`/r/{code}` as a route, for an app that does not answer it first (`serve_redirect`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await answer_redirect(scope["app"].state, scope, receive, send, str(scope["path_params"]["code"]))


router.routes.append(Route(REDIRECT_ROUTE, RedirectRoute(), methods=["GET", "HEAD"], include_in_schema=False))

_REDIRECT_LATENCY = HTTP_LATENCY.labels(REDIRECT_ROUTE)
_REDIRECT_COUNTERS = {
    (method, status): HTTP_REQUESTS.labels(method, REDIRECT_ROUTE, str(status))
    for method in ("GET", "HEAD")
    for status in (302, 404, 500)
}


async def serve_redirect(state: State, scope: Scope, receive: Receive, send: Send, code: str) -> None:
    """Answers `/r/{code}` before anything else of the app — FastAPI's own middleware (error page, telemetry,
    body limit), our request id and access log, the routing — keeping the request metrics; an error is logged
    and answered 500 here. `PartnersApp` calls it first; everything else goes on to the app's own stack."""
    started = time.perf_counter()
    try:
        status_code = await answer_redirect(state, scope, receive, send, code)
    except Exception:
        logger.exception("redirect failed", code=code)
        status_code = 500
        await HTMLResponse(ERROR_PAGE, status_code=500)(scope, receive, send)
    _REDIRECT_LATENCY.observe(time.perf_counter() - started)
    counter = _REDIRECT_COUNTERS.get((scope["method"], status_code))
    if counter is not None:
        counter.inc()


def redirect_code(scope: Scope) -> str | None:
    """The code of a `GET|HEAD /r/{code}` request, else None."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return None
    path: str = scope["path"]
    if not path.startswith(REDIRECT_PREFIX):
        return None
    code = path[len(REDIRECT_PREFIX) :]
    return code if code and "/" not in code else None


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; min-height: 100vh; display: grid; place-items: center;
       background: #f6f7f9; color: #1f2933; }}
main {{ max-width: 32rem; padding: 2rem; text-align: center; }}
h1 {{ font-size: 1.5rem; margin-bottom: .5rem; }}
p {{ line-height: 1.5; color: #52606d; }}
</style>
</head>
<body>
<main>
<h1>{heading}</h1>
<p>{text}</p>
</main>
</body>
</html>
"""
NOT_FOUND_PAGE = _PAGE.format(
    title="Link not found",
    heading="This link isn't available",
    text="The link you followed doesn't exist or is no longer active. Please check it, or ask whoever shared it\n"
    "for a new one.",
)
ERROR_PAGE = _PAGE.format(
    title="Something went wrong",
    heading="Something went wrong",
    text="We couldn't follow this link just now. Please try again in a moment.",
)
