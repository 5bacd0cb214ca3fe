"""Staff console (/console; the JSON admin API keeps /admin): log in, overview, applications, partners, audit.

Every action calls the same service as the admin API, with the staff member as the audited actor; pages
show the audit trail (who did what, when) next to what it changed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service as affiliates
from partners.audit.service import Actor, entries_for, record
from partners.commissions import service as commissions
from partners.commissions.accounts import partner_owner
from partners.dashboard import service as dashboards
from partners.db.types import utcnow
from partners.identity import service as identity
from partners.identity.deps import clear_session_cookie, set_session_cookie
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError, Unprocessable
from partners.ledger.service import owner_balances
from partners.programs import service as programs
from partners.programs.models import Program
from partners.tracking import service as tracking
from partners.tracking.schemas import CouponCreate
from partners.web import reports
from partners.web.pages import (
    FormErrors,
    PageRoute,
    StaffViewer,
    check_form_token,
    client_ip,
    form_token,
    redirect,
    render,
    safe_next,
    settings_of,
    staff_viewer,
    text,
    whole_number,
    write_unit,
)
from partners.web.templating import major_units

router = APIRouter(route_class=PageRoute, include_in_schema=False)

NAV = (
    ("/console", "Overview", "overview", "reports:read"),
    ("/console/applications", "Applications", "applications", "partners:read"),
    ("/console/partners", "Partners", "partners", "partners:read"),
    ("/console/commissions", "Commissions", "commissions", "commissions:read"),
    ("/console/payouts", "Payouts", "payouts", "payouts:read"),
    ("/console/disputes", "Disputes", "disputes", "disputes:read"),
    ("/console/programs", "Programs & tiers", "programs", "programs:read"),
    ("/console/staff", "Staff", "staff", "staff:manage"),
    ("/console/api-keys", "API keys", "api-keys", "apikeys:manage"),
    ("/console/audit", "Audit log", "audit", "reports:read"),
    ("/console/settings", "Settings", "settings", "reports:read"),
    ("/console/security", "Two-factor login", "security", ""),
)
NOTICES = {
    "approve": "Application approved; the partner has been emailed.",
    "reject": "Application rejected; the partner has been emailed.",
    "suspend": "Partner suspended.",
    "ban": "Partner banned; their sessions are ended.",
    "reinstate": "Partner reinstated.",
    "tier": "Tier changed.",
    "note": "Note added.",
    "override": "Rate override saved.",
    "override-cleared": "Rate override removed; the tier's rates apply again.",
    "coupon": "Coupon created.",
    "logout": "You are logged out.",
}
PERIODS = (("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"))


def console_context(request: Request, viewer: StaffViewer, active: str, **extra: Any) -> dict[str, Any]:
    principal = viewer.principal
    return {
        "nav": [(href, label, key) for href, label, key, permission in NAV if not permission or viewer.can(permission)],
        "active": active,
        "home_url": "/console",
        "area_name": "Console",
        "logout_url": "/console/logout",
        "who": f"{principal.name} · {principal.role.value}",
        "csrf_token": viewer.csrf_token,
        "viewer": viewer,
        "notice": extra.pop("notice", None) or _notice(request),
        **extra,
    }


def _notice(request: Request) -> str | None:
    done = request.query_params.get("done", "")
    return NOTICES.get(done) or (CONSOLE_NOTICES.get(done))


CONSOLE_NOTICES: dict[str, str] = {}  # other console modules add theirs


def actor(viewer: StaffViewer) -> Actor:
    return Actor("staff", viewer.actor_id)


# --- log in / out ---------------------------------------------------------------------------------------


@router.get("/admin")
async def admin_root(request: Request) -> Response:
    return redirect(request, "/console")


@router.get("/admin/login")
async def admin_login(request: Request) -> Response:
    return redirect(request, "/console/login")


@router.get("/console/login")
async def login_page(request: Request) -> Response:
    context = {
        "csrf_token": form_token(request),
        "next": request.query_params.get("next", ""),
        "email": "",
        "notice": NOTICES.get(request.query_params.get("done", "")),
    }
    return render(request, "console/login.html", context)


@router.post("/console/login")
async def login(request: Request) -> Response:
    await check_form_token(request)
    form = await request.form()
    settings = settings_of(request)
    email, target = text(form, "email", max_length=320), text(form, "next")
    rejection: AppError | None = None
    try:
        async with write_unit(request) as session:
            try:
                user = await identity.authenticate_staff(
                    session,
                    settings,
                    email=email,
                    password=text(form, "password"),
                    otp=text(form, "otp", max_length=16) or None,
                    ip=client_ip(request),
                )
            except identity.LoginRejected as error:
                rejection = error
            else:
                token, _csrf = await identity.start_session(
                    session,
                    settings,
                    subject_kind="staff",
                    subject_id=user.id,
                    ip=client_ip(request),
                    user_agent=request.headers.get("user-agent"),
                    two_factor_pending=not user.totp_enabled,
                )
    except AppError as error:
        rejection = error
    if rejection is not None:
        context = {
            "csrf_token": form_token(request),
            "next": target,
            "email": email,
            "errors": FormErrors.of(rejection),
        }
        return render(request, "console/login.html", context, status_code=rejection.status)
    response = redirect(request, safe_next(target, "/console"))
    set_session_cookie(response, request, settings, subject_kind="staff", token=token)
    return response


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session)
        await identity.revoke_session(session, viewer.principal.session_id)
    response = redirect(request, "/console/login?done=logout")
    clear_session_cookie(response, request, settings_of(request), subject_kind="staff")
    return response


# --- overview -------------------------------------------------------------------------------------------


@router.get("/console")
async def overview(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session)
    if not viewer.can("reports:read"):
        return redirect(request, "/console/partners")
    period = request.query_params.get("period", "30d")
    period = period if period in dict(PERIODS) else "30d"
    window = dashboards.resolve_window(first=None, last=None, period=period, today=utcnow().date())
    program = await programs.find_default_program(session)  # a read: none before the first partner or event
    currency = program.currency if program is not None else programs.DEFAULT_PROGRAM_CURRENCY
    figures = await reports.overview(session, window)
    series = await reports.daily_series(session, window, currency)
    days = reports.days_of(window)
    chart = {
        "labels": [day.strftime("%d %b") for day in days],
        "series": [
            {
                "key": key,
                "label": f"{label} ({currency})",
                "type": kind,
                "data": [float(major_units(series[key].get(day, 0), currency)) for day in days],
            }
            for key, label, kind in (
                ("revenue", "Revenue referred", "bar"),
                ("commissions", "Commissions", "line"),
                ("payouts", "Payouts paid", "line"),
            )
        ],
    }
    context = console_context(
        request,
        viewer,
        "overview",
        period=period,
        periods=PERIODS,
        window=window,
        figures=figures,
        chart=chart,
        currency=currency,
        top=await reports.top_partners(session, window, currency),
        pending_applications=figures.partners_by_status.get("pending", 0),
    )
    return render(request, "console/overview.html", context)


# --- applications ---------------------------------------------------------------------------------------


@router.get("/console/applications")
async def applications(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "partners:read")
    pending = await affiliates.pending_applications(session, limit=200)
    decided = await reports.recent_audit(
        session, limit=10, subject_type="partner", actions=("partner.approve", "partner.reject")
    )
    context = console_context(
        request,
        viewer,
        "applications",
        pending=pending,
        decided=decided,
        decided_names=await reports.partner_names(session, {int(e.subject_id) for e in decided}),
        names=await reports.staff_names(session),
        errors=FormErrors(),
    )
    return render(request, "console/applications.html", context)


async def _decide(request: Request, partner_id: int, action: str, back: str) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "partners:write")
            await affiliates.change_status(
                session,
                settings_of(request),
                partner_id,
                action,
                actor=actor(viewer),
                reason=text(form, "reason", max_length=500),
            )
    except AppError as error:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session)
        return render(
            request,
            "console/failed.html",
            console_context(request, viewer, "partners", errors=FormErrors.of(error), back=back),
            status_code=error.status,
        )
    return redirect(request, f"{back}?done={action}")


@router.post("/console/applications/{partner_id}/{action}")
async def decide_application(partner_id: int, action: str, request: Request) -> Response:
    if action not in ("approve", "reject"):
        raise Unprocessable("Unknown decision.", field="action")
    return await _decide(request, partner_id, action, "/console/applications")


# --- partners -------------------------------------------------------------------------------------------


@router.get("/console/partners")
async def partners(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "partners:read")
    query = request.query_params.get("q", "").strip()[:100]
    status = request.query_params.get("status", "")
    status = status if status in ("pending", "approved", "rejected", "suspended", "banned") else ""
    offset = max(0, int(request.query_params.get("offset", "0") or 0))
    rows, total = await reports.search_partners(session, query=query, status=status or None, limit=50, offset=offset)
    context = console_context(
        request,
        viewer,
        "partners",
        rows=rows,
        q=query,
        status=status,
        page={"total": total, "limit": 50, "offset": offset},
    )
    return render(request, "console/partners.html", context)


@router.get("/console/partners/{partner_id}")
async def partner_detail(partner_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "partners:read")
    return render(request, "console/partner.html", await _partner_context(request, session, viewer, partner_id))


async def _partner_context(
    request: Request, session: AsyncSession, viewer: StaffViewer, partner_id: int, **extra: Any
) -> dict[str, Any]:
    partner = await affiliates.get_partner(session, partner_id)
    now = utcnow()
    window = dashboards.resolve_window(first=None, last=None, period="30d", today=now.date())
    recent, total_commissions = await commissions.list_commissions(
        session, commissions.CommissionFilter(partner_id=partner.id), limit=10, offset=0
    )
    entries = await entries_for(session, "partner", partner.id)
    context = console_context(
        request,
        viewer,
        "partners",
        partner=partner,
        tier=await affiliates.get_tier(session, partner.tier_id),
        tier_options=[(t.id, t.name) for t in await programs.list_tiers(session, partner.program_id)],
        program=await session.get_one(Program, partner.program_id),
        parent=await affiliates.get_partner(session, partner.parent_id) if partner.parent_id else None,
        balances=await owner_balances(session, partner_owner(partner.id)),
        tree=await affiliates.downline(session, partner, depth=affiliates.TREE_DEPTH),
        summary=await dashboards.partner_dashboard(session, partner, window, now=now),
        recent=recent,
        total_commissions=total_commissions,
        override=await programs.get_override(session, partner.id),
        entries=list(reversed(entries)),
        notes=[entry for entry in reversed(entries) if entry.action == "partner.note"],
        names=await reports.staff_names(session),
        actions=[a for a, t in affiliates.TRANSITIONS.items() if partner.status in t.sources and a != "approve"],
        coupons=await tracking.list_coupons(session, partner.id),
        values=extra.pop("values", {}),
        **extra,
    )
    return context


@router.post("/console/partners/{partner_id}/status/{action}")
async def partner_status(partner_id: int, action: str, request: Request) -> Response:
    if action not in affiliates.TRANSITIONS:
        raise Unprocessable("Unknown action.", field="action")
    return await _decide(request, partner_id, action, f"/console/partners/{partner_id}")


async def _partner_action_failed(request: Request, partner_id: int, error: AppError) -> Response:
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session)
    context = console_context(
        request, viewer, "partners", errors=FormErrors.of(error), back=f"/console/partners/{partner_id}"
    )
    return render(request, "console/failed.html", context, status_code=error.status)


@router.post("/console/partners/{partner_id}/tier")
async def assign_tier(partner_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            await programs.assign_tier(
                session,
                actor(viewer),
                partner_id,
                whole_number(text(form, "tier_id"), "tier_id"),
                reason=text(form, "reason", max_length=500),
            )
    except AppError as error:
        return await _partner_action_failed(request, partner_id, error)
    return redirect(request, f"/console/partners/{partner_id}?done=tier")


def _optional_bps(value: str, field: str) -> int | None:
    return whole_number(value, field) if value else None


@router.post("/console/partners/{partner_id}/override")
async def set_override(partner_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        reason = text(form, "reason", max_length=500)
        if not reason:
            raise Unprocessable("A reason is required for a negotiated rate.", field="reason")
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            await programs.set_override(
                session,
                actor(viewer),
                partner_id,
                base_rate_bps=_optional_bps(text(form, "base_rate_bps"), "base_rate_bps"),
                level2_rate_bps=_optional_bps(text(form, "level2_rate_bps"), "level2_rate_bps"),
                level3_rate_bps=_optional_bps(text(form, "level3_rate_bps"), "level3_rate_bps"),
                reason=reason,
            )
    except AppError as error:
        return await _partner_action_failed(request, partner_id, error)
    return redirect(request, f"/console/partners/{partner_id}?done=override")


@router.post("/console/partners/{partner_id}/override/clear")
async def clear_override(partner_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            await programs.clear_override(
                session, actor(viewer), partner_id, reason=text(form, "reason", max_length=500)
            )
    except AppError as error:
        return await _partner_action_failed(request, partner_id, error)
    return redirect(request, f"/console/partners/{partner_id}?done=override-cleared")


@router.post("/console/partners/{partner_id}/coupons")
async def create_coupon(partner_id: int, request: Request) -> Response:
    form = await request.form()
    code = text(form, "code", max_length=64)
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "partners:write")
            body = CouponCreate.model_validate({"partner_id": partner_id, "code": code})
            await tracking.create_coupon(session, actor(viewer), partner_id=body.partner_id, code=body.code)
    except (AppError, ValidationError) as error:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "partners:read")
            context = await _partner_context(
                request, session, viewer, partner_id, values={"code": code}, errors=_coupon_errors(error)
            )
        status = error.status if isinstance(error, AppError) else 422
        return render(request, "console/partner.html", context, status_code=status)
    return redirect(request, f"/console/partners/{partner_id}?done=coupon#coupons-title")


def _coupon_errors(error: AppError | ValidationError) -> FormErrors:
    errors = FormErrors.of(error)
    if isinstance(error, ValidationError):  # the pattern's message means nothing to a person
        errors = FormErrors("Please check the code.", {"code": "3 to 64 letters, digits, _ or -."})
    return errors


@router.post("/console/partners/{partner_id}/notes")
async def add_note(partner_id: int, request: Request) -> Response:
    """A staff note is an audit entry on the partner (who wrote it and when come with it)."""
    form = await request.form()
    note = text(form, "note", max_length=2000)
    try:
        if not note:
            raise Unprocessable("Write the note first.", field="note")
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "partners:write")
            partner = await affiliates.get_partner(session, partner_id)
            await record(
                session,
                actor(viewer),
                "partner.note",
                subject_type="partner",
                subject_id=partner.id,
                details={"note": note},
            )
    except AppError as error:
        return await _partner_action_failed(request, partner_id, error)
    return redirect(request, f"/console/partners/{partner_id}?done=note")


# --- audit log ------------------------------------------------------------------------------------------


@router.get("/console/audit")
async def audit_log(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "reports:read")
    entries = await reports.recent_audit(session, limit=200)
    context = console_context(request, viewer, "audit", entries=entries, names=await reports.staff_names(session))
    return render(request, "console/audit.html", context)
