"""Partner portal, the public side: apply, verify email, log in and out, reset the password."""

from __future__ import annotations

import pycountry
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service as affiliates
from partners.affiliates.models import AgreementVersion
from partners.affiliates.schemas import RegistrationIn
from partners.identity import service as identity
from partners.identity.deps import clear_session_cookie, set_session_cookie
from partners.identity.passwords import MIN_PASSWORD_LENGTH
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError
from partners.programs.models import Program
from partners.web.pages import (
    FormErrors,
    PageRoute,
    check_form_token,
    client_ip,
    form_token,
    partner_viewer,
    redirect,
    render,
    safe_next,
    settings_of,
    text,
    write_unit,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

COUNTRIES = sorted(((country.alpha_2, country.name) for country in pycountry.countries), key=lambda c: c[1])
NOTICES = {
    "logout": "You are logged out.",
    "reset": "Your password is changed. Log in with the new one.",
    "verified": "Your email is confirmed.",
}


async def _current_agreement(session: AsyncSession) -> AgreementVersion | None:
    program = await session.scalar(sa.select(Program).where(Program.is_default.is_(True)).order_by(Program.id).limit(1))
    return await affiliates.current_agreement(session, program.id) if program is not None else None


def _public(request: Request, **context: object) -> dict[str, object]:
    return {"csrf_token": form_token(request), "min_password": MIN_PASSWORD_LENGTH, **context}


# --- log in / out ---------------------------------------------------------------------------------------


@router.get("/portal/login")
async def login_page(request: Request) -> Response:
    notice = NOTICES.get(request.query_params.get("done", ""))
    context = _public(request, next=request.query_params.get("next", ""), notice=notice, email="")
    return render(request, "portal/login.html", context)


@router.post("/portal/login")
async def login(request: Request) -> Response:
    await check_form_token(request)
    form = await request.form()
    settings = settings_of(request)
    email, password, target = text(form, "email", max_length=320), text(form, "password"), text(form, "next")
    rejection: AppError | None = None
    try:
        async with write_unit(request) as session:
            try:
                partner = await affiliates.authenticate_partner(
                    session, settings, email=email, password=password, ip=client_ip(request)
                )
            except identity.LoginRejected as error:
                rejection = error  # the failed attempt must still commit
            else:
                token, _csrf = await identity.start_session(
                    session,
                    settings,
                    subject_kind="partner",
                    subject_id=partner.id,
                    ip=client_ip(request),
                    user_agent=request.headers.get("user-agent"),
                )
    except AppError as error:
        rejection = error
    if rejection is not None:
        context = _public(request, next=target, email=email, errors=FormErrors(rejection.detail))
        return render(request, "portal/login.html", context, status_code=rejection.status)
    response = redirect(request, safe_next(target, "/portal"))
    set_session_cookie(response, request, settings, subject_kind="partner", token=token)
    return response


@router.post("/portal/logout")
async def logout(request: Request) -> Response:
    async with write_unit(request) as session:
        viewer = await partner_viewer(request, session)
        await identity.revoke_session(session, viewer.session_id)
    response = redirect(request, "/portal/login?done=logout")
    clear_session_cookie(response, request, settings_of(request), subject_kind="partner")
    return response


# --- apply ------------------------------------------------------------------------------------------------


@router.get("/portal/apply")
async def apply_page(request: Request, session: SessionDep) -> Response:
    values = {"recruiter_code": request.query_params.get("ref", "")[:32]}
    context = _public(request, values=values, countries=COUNTRIES, agreement=await _current_agreement(session))
    return render(request, "portal/apply.html", context)


def _application(form: dict[str, str], agreement: AgreementVersion | None) -> RegistrationIn:
    accepted = agreement.version if agreement and form.get("accept_agreement") == str(agreement.version) else None
    return RegistrationIn(
        name=form["name"],
        email=form["email"],
        password=form["password"],
        website=form["website"],
        audience=form["audience"],
        country=form["country"],
        recruiter_code=form["recruiter_code"] or None,
        accept_agreement=accepted,
    )


@router.post("/portal/apply")
async def apply(request: Request) -> Response:
    await check_form_token(request)
    raw = await request.form()
    names = ("name", "email", "password", "website", "audience", "country", "recruiter_code", "accept_agreement")
    values = {name: text(raw, name) for name in names}
    settings = settings_of(request)
    errors = FormErrors()
    agreement = None
    try:
        async with write_unit(request) as session:
            agreement = await _current_agreement(session)
            application = _application(values, agreement)
            if agreement is not None and application.accept_agreement is None:
                errors = FormErrors(
                    "Please read and accept the partner agreement.",
                    {"accept_agreement": "Tick the box to accept the agreement."},
                )
            else:
                partner = await affiliates.register_partner(
                    session,
                    settings,
                    application,
                    ip=client_ip(request),
                    user_agent=request.headers.get("user-agent"),
                )
    except ValidationError as error:
        errors = FormErrors.of(error)
    except AppError as error:
        errors = FormErrors.of(error)
    if errors:
        values.pop("password", None)
        context = _public(request, values=values, countries=COUNTRIES, agreement=agreement, errors=errors)
        return render(request, "portal/apply.html", context, status_code=422)
    return render(request, "portal/applied.html", _public(request, name=partner.name, email=partner.email))


# --- verify email, reset the password ---------------------------------------------------------------------


@router.get("/portal/verify-email")
async def verify_email(request: Request) -> Response:
    """The link in the verification email (a GET that writes: it opens its own write unit of work)."""
    token = request.query_params.get("token", "")[:200]
    status = None
    error: AppError | None = None
    try:
        async with write_unit(request) as session:
            partner = await affiliates.verify_email(session, settings_of(request), token)
            status = partner.status
    except AppError as failure:
        error = failure
    context = _public(request, status=status, error=error)
    return render(request, "portal/verified.html", context, status_code=error.status if error else 200)


@router.get("/portal/reset-password")
async def reset_page(request: Request) -> Response:
    token = request.query_params.get("token", "")[:200]
    return render(request, "portal/reset.html", _public(request, token=token, sent=False))


@router.post("/portal/reset-password/request")
async def request_reset(request: Request) -> Response:
    await check_form_token(request)
    form = await request.form()
    email = text(form, "email", max_length=320)
    try:
        async with write_unit(request) as session:
            await affiliates.request_password_reset(session, settings_of(request), email, ip=client_ip(request))
    except AppError as error:
        context = _public(request, token="", sent=False, email=email, errors=FormErrors.of(error))
        return render(request, "portal/reset.html", context, status_code=error.status)
    return render(request, "portal/reset.html", _public(request, token="", sent=True, email=email))


@router.post("/portal/reset-password")
async def reset_password(request: Request) -> Response:
    await check_form_token(request)
    form = await request.form()
    token, password = text(form, "token", max_length=200), text(form, "password")
    try:
        if password != text(form, "password_again"):
            raise ValueError
        async with write_unit(request) as session:
            await affiliates.reset_password(session, settings_of(request), token, password)
    except ValueError:
        errors = FormErrors("The two passwords differ.", {"password_again": "Type the same password twice."})
        return render(request, "portal/reset.html", _public(request, token=token, errors=errors), status_code=422)
    except AppError as error:
        context = _public(request, token=token, errors=FormErrors.of(error))
        return render(request, "portal/reset.html", context, status_code=error.status)
    return redirect(request, "/portal/login?done=reset")
