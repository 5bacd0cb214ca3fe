"""A demo host, "Namaskah shop", clearly labelled DEMO: the whole affiliate loop in one browser.

A visitor lands here from a partner's link (the redirect appends `ref` and `click_id` and sets the `np_click`
cookie), signs up and buys verification credits. The shop reports both to the events service exactly as a
real host would report them to `POST /events/signup` and `POST /events/purchase`, so the partner's dashboard
shows the click, the customer and the commission.

On in development (PARTNERS_ENV=development, what `make run` uses) or with PARTNERS_DEMO_SHOP=true; never in
production (the routes answer 404). The shop keeps its "account" in a signed cookie: it has no tables.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from partners.audit.service import Actor
from partners.db.types import utcnow
from partners.events import service as events
from partners.events.schemas import PurchaseIn, SignupIn
from partners.kit.crypto import keyed_hash
from partners.kit.errors import AppError, NotFound
from partners.programs import service as programs
from partners.settings import Settings
from partners.web.pages import (
    FormErrors,
    PageRoute,
    check_form_token,
    client_ip,
    form_token,
    redirect,
    render,
    settings_of,
    text,
    write_unit,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SHOP_PATH = "/demo-shop"
VISIT_COOKIE = "demo_shop_visit"
ACCOUNT_COOKIE = "demo_shop_account"
COOKIE_PURPOSE = "demo-shop-cookie"
CURRENCY = "USD"
CLICK_COOKIE = "np_click"  # set by the /r/{code} redirect (tracking/api.py)


@dataclass(frozen=True, slots=True)
class Pack:
    key: str
    name: str
    verifications: int
    amount: int  # minor units of CURRENCY


PACKS = (
    Pack("starter", "Starter", 500, 2_500),
    Pack("growth", "Growth", 2_500, 10_000),
    Pack("scale", "Scale", 15_000, 50_000),
)


def enabled(settings: Settings) -> bool:
    return settings.environment != "production" and (settings.environment == "development" or settings.demo_shop)


def shop_url(settings: Settings) -> str:
    return f"{settings.base_url.rstrip('/')}{SHOP_PATH}"


def is_demo_destination(settings: Settings, url: str) -> bool:
    """A link to this server's own demo shop (only while the shop is on)."""
    if not enabled(settings):
        return False
    target, own = urlsplit(url.strip()), urlsplit(settings.base_url)
    return target.netloc == own.netloc and target.path.rstrip("/") == SHOP_PATH


async def allow_demo_destination(session: AsyncSession, settings: Settings, program_id: int) -> None:
    """Let partners link to the demo shop: its host joins the program's allowed destinations (audited)."""
    program = await programs.get_program(session, program_id)
    host = (urlsplit(settings.base_url).hostname or "").lower()
    if host and host not in program.allowed_destination_hosts:
        hosts = [*program.allowed_destination_hosts, host]
        await programs.update_program(session, Actor.system(), program.id, allowed_destination_hosts=hosts)


def _ensure_enabled(request: Request) -> Settings:
    settings = settings_of(request)
    if not enabled(settings):
        raise NotFound("There is no demo shop here.")
    return settings


# --- the signed cookies --------------------------------------------------------------------------------


def _sign(settings: Settings, value: str) -> str:
    return f"{value}|{keyed_hash(settings, value, purpose=COOKIE_PURPOSE)[:32]}"


def _unsign(settings: Settings, cookie: str | None) -> list[str] | None:
    if not cookie or "|" not in cookie:
        return None
    value, _, signature = cookie.rpartition("|")
    expected = keyed_hash(settings, value, purpose=COOKIE_PURPOSE)[:32]
    return value.split("\t") if hmac.compare_digest(signature, expected) else None


@dataclass(frozen=True, slots=True)
class Account:
    external_id: str
    email: str


def _account(request: Request, settings: Settings) -> Account | None:
    parts = _unsign(settings, request.cookies.get(ACCOUNT_COOKIE))
    return Account(parts[0], parts[1]) if parts and len(parts) == 2 else None


def _visit(request: Request, settings: Settings) -> tuple[str, str]:
    """(ref, click_id) from this visit's URL, else from the first landing (kept in a cookie)."""
    ref = request.query_params.get("ref", "")[:32]
    click_id = request.query_params.get("click_id", "")[:32]
    if ref or click_id:
        return ref, click_id
    parts = _unsign(settings, request.cookies.get(VISIT_COOKIE))
    if parts and len(parts) == 2:
        return parts[0], parts[1]
    return "", ""


def _set(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, max_age=30 * 86_400, path=SHOP_PATH, httponly=True, samesite="lax")


# --- pages ----------------------------------------------------------------------------------------------


def _context(request: Request, settings: Settings, **extra: object) -> dict[str, object]:
    ref, click_id = _visit(request, settings)
    return {
        "csrf_token": form_token(request),
        "account": _account(request, settings),
        "ref": ref,
        "click_id": click_id or request.cookies.get(CLICK_COOKIE, ""),
        "packs": PACKS,
        "currency": CURRENCY,
        "bought": request.query_params.get("bought", ""),
        **extra,
    }


@router.get(SHOP_PATH)
async def shop(request: Request) -> Response:
    settings = _ensure_enabled(request)
    context = _context(request, settings)
    response = render(request, "demo/shop.html", context)
    ref, click_id = request.query_params.get("ref", "")[:32], request.query_params.get("click_id", "")[:32]
    if ref or click_id:
        _set(response, VISIT_COOKIE, _sign(settings, f"{ref}\t{click_id}"))
    return response


@router.post(f"{SHOP_PATH}/signup")
async def signup(request: Request) -> Response:
    settings = _ensure_enabled(request)
    await check_form_token(request)
    form = await request.form()
    email = text(form, "email", max_length=254).lower()
    ref, click_id = _visit(request, settings)
    click_id = click_id or request.cookies.get(CLICK_COOKIE, "")
    external_id = f"demo-{secrets.token_hex(6)}"
    try:
        event = SignupIn(
            external_id=external_id,
            email=email,
            click_id=click_id or None,
            referral_code=ref or None,
            ip=client_ip(request),
        )
        async with write_unit(request) as session:
            await events.record_signup(session, settings, event, now=utcnow())
    except (AppError, ValueError) as error:
        errors = (
            FormErrors.of(error)
            if isinstance(error, AppError)
            else FormErrors("Enter a valid email address.", {"email": "Enter a valid email address."})
        )
        return render(
            request, "demo/shop.html", _context(request, settings, errors=errors, email=email), status_code=422
        )
    response = redirect(request, SHOP_PATH)
    _set(response, ACCOUNT_COOKIE, _sign(settings, f"{external_id}\t{email}"))
    return response


@router.post(f"{SHOP_PATH}/buy")
async def buy(request: Request) -> Response:
    settings = _ensure_enabled(request)
    await check_form_token(request)
    account = _account(request, settings)
    if account is None:
        return redirect(request, SHOP_PATH)
    form = await request.form()
    pack = next((item for item in PACKS if item.key == text(form, "pack")), None)
    if pack is None:
        raise NotFound("No such credit pack.")
    event = PurchaseIn(
        external_id=f"demo-order-{secrets.token_hex(6)}",
        customer=account.external_id,
        amount=pack.amount,
        currency=CURRENCY,
        product="credits",
    )
    async with write_unit(request) as session:
        await events.record_purchase(session, event, now=utcnow())
    return redirect(request, f"{SHOP_PATH}?bought={pack.key}")


@router.post(f"{SHOP_PATH}/sign-out")
async def sign_out(request: Request) -> Response:
    _ensure_enabled(request)
    await check_form_token(request)
    response = redirect(request, SHOP_PATH)
    response.delete_cookie(ACCOUNT_COOKIE, path=SHOP_PATH)
    response.delete_cookie(VISIT_COOKIE, path=SHOP_PATH)
    return response
