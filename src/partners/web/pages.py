"""The web layer's plumbing: page routes, login redirects, CSRF for forms, form errors, rendering.

Pages call the same services as the API. GET pages read through `SessionDep` (a read unit of work); every
POST opens its own write unit of work with `write_unit(request)` and catches `AppError` outside it, so a
failed action rolls back whole and the form is shown again with the message. `PageRoute` turns a missing
login into a redirect to the login page and any other `AppError` into an HTML error page.

CSRF: a logged-in form posts the session's CSRF token (hidden `csrf_token` field; htmx sends the
`X-CSRF-Token` header set by `hx-headers` on <body>) and identity's `authenticate_session` checks it. A
public form (apply, login, password reset) uses a double-submit token: a random cookie and the same value in
the form.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from babel.numbers import get_currency_precision
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.responses import RedirectResponse

from partners.affiliates.models import Partner
from partners.identity.deps import CSRF_FORM_FIELD, CSRF_HEADER, authenticate_session, two_factor_blocks
from partners.identity.models import StaffUser
from partners.identity.principals import StaffPrincipal
from partners.identity.roles import has_permission
from partners.kit.deps import database_of
from partners.kit.errors import AppError, Forbidden, Unauthorized, Unprocessable
from partners.settings import Settings
from partners.web.templating import templates

FORM_COOKIE = "partners_form_csrf"
PARTNER_LOGIN = "/portal/login"
STAFF_LOGIN = "/console/login"
STAFF_TWO_FACTOR = "/console/security"


class LoginRequired(Exception):
    """Raised by the page auth helpers; `PageRoute` answers with a redirect to `login_url`."""

    def __init__(self, login_url: str) -> None:
        super().__init__(login_url)
        self.login_url = login_url


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, url: str) -> Response:
    """A 303 for a normal request; for htmx an HX-Redirect (a redirected XHR would swap the page in)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _login_redirect(request: Request, login_url: str) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = request.headers.get("hx-current-url") or request.url.path
    return redirect(request, f"{login_url}?next={quote(target, safe='/')}")


def error_page(request: Request, error: AppError) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"error": error, "area": _area(request)}, status_code=error.status
    )


def _area(request: Request) -> str:
    path = request.url.path
    return "console" if path.startswith("/console") else "portal" if path.startswith("/portal") else "public"


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as missing:
                return _login_redirect(request, missing.login_url)
            except AppError as error:
                return error_page(request, error)

        return page_handler


def safe_next(target: str | None, default: str) -> str:
    """Only a local path may be a redirect target after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


# --- units of work -----------------------------------------------------------------------------------------


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@asynccontextmanager
async def write_unit(request: Request) -> AsyncIterator[AsyncSession]:
    """A write transaction for a page action: committed at the end, rolled back on any error."""
    async with database_of(request).write() as session:
        yield session


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- who is logged in -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartnerViewer:
    partner: Partner
    csrf_token: str
    session_id: int


@dataclass(frozen=True, slots=True)
class StaffViewer:
    principal: StaffPrincipal
    csrf_token: str

    @property
    def actor_id(self) -> str:
        return str(self.principal.user_id)

    def can(self, permission: str) -> bool:
        return self.principal.can(permission)


async def partner_viewer(request: Request, session: AsyncSession) -> PartnerViewer:
    """The logged-in partner (cookie, CSRF checked on POST); LoginRequired otherwise."""
    settings = settings_of(request)
    try:
        current = await authenticate_session(request, session, settings, subject_kind="partner", subject=Partner)
    except Unauthorized:
        raise LoginRequired(PARTNER_LOGIN) from None
    partner = current.subject
    if partner.status == "banned":
        raise LoginRequired(PARTNER_LOGIN)
    return PartnerViewer(partner, current.auth_session.csrf_token, current.auth_session.id)


async def staff_viewer(
    request: Request, session: AsyncSession, permission: str | None = None, *, enrolling: bool = False
) -> StaffViewer:
    """The logged-in, active staff member holding `permission`; LoginRequired or Forbidden otherwise.

    Where staff 2FA is required, a session that has not passed it is sent to the enrolment page, the only
    page (`enrolling=True`) it may open.
    """
    settings = settings_of(request)
    try:
        current = await authenticate_session(request, session, settings, subject_kind="staff", subject=StaffUser)
    except Unauthorized:
        raise LoginRequired(STAFF_LOGIN) from None
    user = current.subject
    if not user.is_active:
        raise LoginRequired(STAFF_LOGIN)
    if not enrolling and two_factor_blocks(settings, current.auth_session):
        raise LoginRequired(STAFF_TWO_FACTOR)
    principal = StaffPrincipal(
        user_id=user.id, email=user.email, name=user.name, role=user.role, session_id=current.auth_session.id
    )
    if permission is not None and not has_permission(user.role, permission):
        raise Forbidden(f"Your role ({user.role.value}) does not allow this ({permission}).")
    return StaffViewer(principal, current.auth_session.csrf_token)


# --- public forms: double-submit CSRF ---------------------------------------------------------------------


def form_token(request: Request) -> str:
    """The public-form token: the cookie's value if the browser has one, else a new one (set by `render`)."""
    existing = request.cookies.get(FORM_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing
    token: str | None = getattr(request.state, "new_form_token", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.new_form_token = token
    return token


async def check_form_token(request: Request) -> None:
    cookie = request.cookies.get(FORM_COOKIE, "")
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FORM_FIELD)
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise Forbidden("This form has expired. Reload the page and try again.")


# --- forms ------------------------------------------------------------------------------------------------


def text(form: FormData, name: str, *, max_length: int = 5000) -> str:
    value = form.get(name)
    return value.strip()[:max_length] if isinstance(value, str) else ""


def optional(form: FormData, name: str, *, max_length: int = 5000) -> str | None:
    return text(form, name, max_length=max_length) or None


def uploads(form: FormData, name: str) -> list[UploadFile]:
    return [item for item in form.getlist(name) if isinstance(item, UploadFile) and item.filename]


def whole_number(value: str, field_name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Unprocessable("Enter a whole number.", field=field_name) from None


def to_minor(value: str, currency: str, field_name: str = "amount") -> int:
    """'12.50' in `currency` → 1250 minor units; refuses more decimals than the currency has."""
    exponent = get_currency_precision(currency.upper())
    try:
        amount = Decimal(value.replace(",", "").strip())
    except InvalidOperation:
        raise Unprocessable("Enter an amount such as 25.00.", field=field_name) from None
    minor = amount.scaleb(exponent)
    if not amount.is_finite() or minor != minor.to_integral_value():
        raise Unprocessable(f"Use at most {exponent} decimals for {currency.upper()}.", field=field_name)
    return int(minor)


@dataclass
class FormErrors:
    """What went wrong with a submitted form: a summary and, when known, the field it belongs to."""

    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.message or self.fields)

    @classmethod
    def of(cls, error: AppError | ValidationError) -> FormErrors:
        if isinstance(error, ValidationError):
            fields: dict[str, str] = {}
            for item in error.errors():
                name = ".".join(str(part) for part in item["loc"]) or "form"
                fields.setdefault(name, _readable(str(item["msg"])))
            first = next(iter(fields.items()), ("form", "is invalid"))
            return cls(f"Please check {first[0].replace('_', ' ')}: {first[1]}", fields)
        fields = {error.field: error.detail} if error.field else {}
        return cls(error.detail, fields)


def _readable(message: str) -> str:
    return message.removeprefix("Value error, ")


# --- rendering --------------------------------------------------------------------------------------------


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    block: str | None = None,
) -> Response:
    """Render a page (or one block of it, for htmx). Sets the public-form cookie when one was made."""
    ctx = dict(context)
    ctx.setdefault("errors", FormErrors())
    if block is not None:
        response = templates.TemplateResponse(request, name, ctx, status_code=status_code, block_name=block)
    else:
        response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    new_token: str | None = getattr(request.state, "new_form_token", None)
    if new_token is not None:
        settings = settings_of(request)
        response.set_cookie(
            FORM_COOKIE,
            new_token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.base_url.startswith("https://"),
        )
    return response


def form_status(errors: FormErrors, error: AppError | None = None) -> int:
    if error is not None:
        return error.status
    return 422 if errors else 200
