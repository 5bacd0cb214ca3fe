"""Partner portal pages (logged in): dashboard, links, commissions, sub-affiliates, payouts, disputes, profile.

Every page calls the same services as the partner API; nothing here computes money.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections import defaultdict
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import segno
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from partners.affiliates import service as affiliates
from partners.commissions import service as commissions
from partners.dashboard import service as dashboards
from partners.dashboard.schemas import DashboardOut
from partners.db.types import start_of_utc_day, utcnow
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError, Forbidden, NotFound, Unprocessable
from partners.payouts import service as payouts
from partners.payouts import statements
from partners.payouts.providers.base import DETAIL_KEYS, PAYOUT_METHODS
from partners.programs.models import Program
from partners.tracking import service as tracking
from partners.tracking.models import TrackingLink
from partners.tracking.schemas import LinkCreate
from partners.web import demo_shop
from partners.web.pages import (
    FormErrors,
    PageRoute,
    PartnerViewer,
    is_htmx,
    partner_viewer,
    redirect,
    render,
    settings_of,
    text,
    to_minor,
    write_unit,
)
from partners.web.templating import major_units, money

router = APIRouter(route_class=PageRoute, include_in_schema=False)

NAV = (
    ("/portal", "Dashboard", "dashboard"),
    ("/portal/links", "Links", "links"),
    ("/portal/commissions", "Commissions", "commissions"),
    ("/portal/team", "Sub-affiliates", "team"),
    ("/portal/payouts", "Payouts", "payouts"),
    ("/portal/disputes", "Disputes", "disputes"),
    ("/portal/profile", "Profile", "profile"),
)
PERIODS = (("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"), ("365d", "1 year"))
NOTICES = {
    "link": "Your link is ready: copy it or download its QR code.",
    "link-off": "Link switched off: it stops redirecting within a minute. Its numbers stay.",
    "link-on": "Link switched on again.",
    "method": "Payout method saved. Unless it is platform credit, confirm it with the token we emailed you.",
    "confirmed": "Payout method confirmed.",
    "requested": "Payout requested. Finance pays requests in the next payout batch.",
    "cancelled": "Payout request cancelled; the money is back in your balance.",
    "dispute": "Dispute opened. Our team answers within two working days.",
    "reply": "Reply sent.",
    "evidence": "Evidence uploaded.",
    "agreement": "Thank you: the agreement is accepted.",
}
METHOD_NAMES = {
    "platform_credit": "Namaskah platform credit",
    "paypal": "PayPal",
    "sepa": "SEPA bank transfer",
    "ach": "ACH (US bank)",
    "wise": "Wise / international transfer",
    "crypto": "Crypto",
}
DETAIL_LABELS = {
    "email": "Email",
    "iban": "IBAN",
    "bic": "BIC",
    "holder": "Account holder",
    "routing_number": "Routing number",
    "account_number": "Account number",
    "account_type": "Account type (checking or savings)",
    "bank_name": "Bank name",
    "bank_code": "Bank code",
    "country": "Bank country (2 letters)",
    "network": "Network (bitcoin or ethereum)",
    "address": "Address",
}
DISPUTE_KINDS = (
    ("wrong_amount", "A commission has the wrong amount"),
    ("reversed_unfairly", "A commission was reversed unfairly"),
    ("missing_conversion", "A sale of mine is missing"),
    ("other", "Something else about a commission"),
)
CSV_PAGE = 500


def portal_context(request: Request, viewer: PartnerViewer, active: str, **extra: Any) -> dict[str, Any]:
    return {
        "nav": NAV,
        "active": active,
        "home_url": "/portal",
        "area_name": "Partner portal",
        "logout_url": "/portal/logout",
        "who": viewer.partner.name,
        "csrf_token": viewer.csrf_token,
        "partner": viewer.partner,
        "notice": NOTICES.get(request.query_params.get("done", "")),
        **extra,
    }


def ensure_approved(viewer: PartnerViewer) -> None:
    if viewer.partner.status != "approved":
        raise Forbidden(f"Your account is {viewer.partner.status}: this needs an approved partner account.")


def _period(request: Request) -> str:
    chosen = request.query_params.get("period", "30d")
    return chosen if chosen in dict(PERIODS) else "30d"


def _parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# --- dashboard ------------------------------------------------------------------------------------------


def _chart(data: DashboardOut, currency: str) -> dict[str, Any]:
    return {
        "labels": [day.date.strftime("%d %b") for day in data.series],
        "series": [
            {"key": "clicks", "label": "Clicks", "type": "bar", "data": [day.clicks for day in data.series]},
            {"key": "conversions", "label": "Conversions", "data": [day.conversions for day in data.series]},
            {
                "key": "earnings",
                "label": f"Earnings ({currency})",
                "axis": "y2",
                "data": [float(major_units(day.earnings.get(currency, 0), currency)) for day in data.series],
            },
        ],
    }


def _earnings_by_status(data: DashboardOut) -> dict[str, list[dict[str, Any]]]:
    by_status: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in data.commissions:
        by_status[row.status][row.currency] += row.net
    return {
        status: [{"currency": c, "amount": a} for c, a in sorted(by_status[status].items())]
        for status in ("pending", "approved", "paid")
    }


def _progress(data: DashboardOut, currency: str) -> list[dict[str, Any]]:
    names = {"revenue": "Referred revenue", "active_customers": "Paying customers", "referrals": "New sub-affiliates"}
    rows = []
    for requirement in data.progress.requirements:
        shown = (
            (money(requirement.current, currency), money(requirement.required, currency))
            if requirement.metric == "revenue"
            else (str(requirement.current), str(requirement.required))
        )
        percent = 100 if requirement.required <= 0 else min(100, requirement.current * 100 // requirement.required)
        rows.append({"name": names.get(requirement.metric, requirement.metric), "shown": shown, "percent": percent})
    return rows


@router.get("/portal")
async def dashboard(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    partner = viewer.partner
    period = _period(request)
    now = utcnow()
    window = dashboards.resolve_window(first=None, last=None, period=period, today=now.date())
    data = await dashboards.partner_dashboard(session, partner, window, now=now)
    program = await session.get_one(Program, partner.program_id)
    context = portal_context(
        request,
        viewer,
        "dashboard",
        data=data,
        period=period,
        periods=PERIODS,
        currency=program.currency,
        chart=_chart(data, program.currency),
        earnings=_earnings_by_status(data),
        progress=_progress(data, program.currency),
        agreement_pending=await affiliates.agreement_pending(session, partner),
    )
    return render(request, "portal/dashboard.html", context, block="dashboard" if is_htmx(request) else None)


# --- links ----------------------------------------------------------------------------------------------


def qr_svg(url: str) -> str:
    qr = segno.make(url, error="m")
    svg: str = qr.svg_inline(scale=4, dark="#0f172a", title=f"QR code for {url}")
    return svg


async def _links_context(request: Request, session: AsyncSession, viewer: PartnerViewer) -> dict[str, Any]:
    settings = settings_of(request)
    period = _period(request)
    window = dashboards.resolve_window(first=None, last=None, period=period, today=utcnow().date())
    offset = max(0, int(request.query_params.get("offset", "0") or 0))
    items, total = await tracking.list_links(
        session, partner_id=viewer.partner.id, start=window.start, end=window.end, limit=20, offset=offset
    )
    created = None
    created_id = request.query_params.get("created", "")
    if created_id.isdigit():
        link = await session.get(TrackingLink, int(created_id))
        if link is not None and link.partner_id == viewer.partner.id:
            short = tracking.short_url(settings, link.code)
            created = {"link": link, "short_url": short, "qr": qr_svg(short)}
    rows = [
        {
            "link": link,
            "stats": stats,
            "short_url": tracking.short_url(settings, link.code),
            "utm": ", ".join(f"{k.removeprefix('utm_')}={v}" for k, v in tracking.link_utm(link).items() if v),
        }
        for link, stats in items
    ]
    return portal_context(
        request,
        viewer,
        "links",
        rows=rows,
        page={"total": total, "limit": 20, "offset": offset},
        period=period,
        periods=PERIODS,
        created=created,
        coupons=[c for c in await tracking.list_coupons(session, viewer.partner.id) if c.active],
        referral_link=affiliates.referral_link(settings, viewer.partner),
        demo_destination=demo_shop.shop_url(settings) if demo_shop.enabled(settings) else None,
        values={},
    )


@router.get("/portal/links")
async def links(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    return render(request, "portal/links.html", await _links_context(request, session, viewer))


@router.get("/portal/links/{link_id}/qr")
async def link_qr(link_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    link = await session.get(TrackingLink, link_id)
    if link is None or link.partner_id != viewer.partner.id:
        raise NotFound("This link does not exist.")
    svg = qr_svg(tracking.short_url(settings_of(request), link.code))
    return Response(f'<div class="qr">{svg}</div>', media_type="text/html")


def _link_request(values: dict[str, str]) -> LinkCreate:
    return LinkCreate(
        destination_url=values["destination_url"],
        utm_source=values["utm_source"] or None,
        utm_medium=values["utm_medium"] or None,
        utm_campaign=values["utm_campaign"] or None,
        utm_term=values["utm_term"] or None,
        utm_content=values["utm_content"] or None,
        slug=values["slug"].lower() or None,
    )


@router.post("/portal/links")
async def create_link(request: Request) -> Response:
    form = await request.form()
    names = ("destination_url", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "slug")
    values = {name: text(form, name, max_length=2000) for name in names}
    settings = settings_of(request)
    try:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            ensure_approved(viewer)
            data = _link_request(values)
            if demo_shop.is_demo_destination(settings, data.destination_url):
                await demo_shop.allow_demo_destination(session, settings, viewer.partner.program_id)
            link = await tracking.create_link(session, partner_id=viewer.partner.id, data=data)
            tracking.link_cache(request.app.state).discard(link.code)
    except (AppError, ValidationError) as error:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            context = await _links_context(request, session, viewer)
        context.update(values=values, errors=FormErrors.of(error))
        return render(request, "portal/links.html", context, status_code=422)
    return redirect(request, f"/portal/links?created={link.id}&done=link")


@router.post("/portal/links/{link_id}/active")
async def switch_link(link_id: int, request: Request) -> Response:
    """Switch one of the partner's links off (`active=false`) or on again."""
    form = await request.form()
    active = text(form, "active", max_length=5) == "true"
    async with write_unit(request) as session:
        viewer = await partner_viewer(request, session)
        if active:
            ensure_approved(viewer)
        link = await tracking.set_link_active(session, partner_id=viewer.partner.id, link_id=link_id, active=active)
        tracking.link_cache(request.app.state).discard(link.code)
    return redirect(request, f"/portal/links?done=link-{'on' if active else 'off'}")


# --- commissions ----------------------------------------------------------------------------------------


def _commission_filter(request: Request, partner_id: int) -> tuple[commissions.CommissionFilter, dict[str, str]]:
    query = request.query_params
    chosen = {name: query.get(name, "") for name in ("status", "level", "from", "to")}
    status = chosen["status"] if chosen["status"] in ("pending", "approved", "paid", "reversed", "rejected") else None
    level = int(chosen["level"]) if chosen["level"] in ("1", "2", "3") else None
    first, last = _parse_day(chosen["from"]), _parse_day(chosen["to"])
    where = commissions.CommissionFilter(
        partner_id=partner_id,
        status=status,
        level=level,
        created_from=start_of_utc_day(first) if first else None,
        created_to=start_of_utc_day(last + timedelta(days=1)) if last else None,
    )
    return where, chosen


@router.get("/portal/commissions")
async def commission_list(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    where, chosen = _commission_filter(request, viewer.partner.id)
    offset = max(0, int(request.query_params.get("offset", "0") or 0))
    rows, total = await commissions.list_commissions(session, where, limit=50, offset=offset)
    query = urlencode({key: value for key, value in chosen.items() if value})
    context = portal_context(
        request,
        viewer,
        "commissions",
        rows=rows,
        page={"total": total, "limit": 50, "offset": offset},
        chosen=chosen,
        query=query,
    )
    return render(request, "portal/commissions.html", context)


@router.get("/portal/commissions.csv")
async def commission_csv(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    where, _chosen = _commission_filter(request, viewer.partner.id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [
            "commission_id",
            "created_at",
            "purchase_id",
            "level",
            "currency",
            "sale_amount",
            "rate_percent",
            "amount",
            "reversed",
            "net",
            "status",
            "payable_at",
        ]
    )
    offset = 0
    while True:
        rows, total = await commissions.list_commissions(session, where, limit=CSV_PAGE, offset=offset)
        for row in rows:
            writer.writerow(
                [
                    row.id,
                    row.created_at.isoformat(),
                    row.purchase_id,
                    row.level,
                    row.currency,
                    major_units(row.base_amount, row.currency),
                    f"{row.rate_bps / 100:.2f}",
                    major_units(row.amount, row.currency),
                    major_units(row.reversed_amount, row.currency),
                    major_units(row.amount - row.reversed_amount, row.currency),
                    row.status,
                    row.payable_at.isoformat(),
                ]
            )
        offset += CSV_PAGE
        if offset >= total:
            break
    filename = f"commissions-{viewer.partner.referral_code}-{utcnow():%Y%m%d}.csv"
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- sub-affiliates -------------------------------------------------------------------------------------


@router.get("/portal/team")
async def team(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    partner = viewer.partner
    tree = await affiliates.downline(session, partner, depth=affiliates.TREE_DEPTH)
    tier = await affiliates.get_tier(session, partner.tier_id)
    base = settings_of(request).base_url.rstrip("/")
    context = portal_context(
        request,
        viewer,
        "team",
        tree=tree,
        can_recruit=tier.can_recruit and partner.status == "approved",
        recruit_link=f"{base}/portal/apply?ref={partner.referral_code}",
        counts=_level_counts(tree),
    )
    return render(request, "portal/team.html", context)


def _level_counts(tree: list[Any]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    stack = list(tree)
    while stack:
        node = stack.pop()
        counts[node.level] += 1
        stack.extend(node.children)
    return dict(counts)


# --- payouts --------------------------------------------------------------------------------------------


async def _payouts_context(
    request: Request, session: AsyncSession, viewer: PartnerViewer, **extra: Any
) -> dict[str, Any]:
    settings = settings_of(request)
    partner = viewer.partner
    now = utcnow()
    program = await session.get_one(Program, partner.program_id)
    balances = await payouts.available_balances(session, partner.id)
    methods = await payouts.list_methods(session, partner.id)
    offset = max(0, int(request.query_params.get("offset", "0") or 0))
    history, total = await payouts.list_payouts(
        session, payouts.PayoutFilter(partner_id=partner.id), limit=25, offset=offset
    )
    currencies = sorted(set(balances) | {program.currency})
    allowed = [m for m in PAYOUT_METHODS if m != "crypto" or program.allow_crypto_payouts]
    context = portal_context(
        request,
        viewer,
        "payouts",
        balances=[
            {"currency": c, "available": balances.get(c, 0), "minimum": payouts.minimum_amount(settings, c)}
            for c in currencies
        ],
        methods=[{"row": m, "problem": payouts.method_problem(m, m.currency, now)} for m in methods],
        history=history,
        page={"total": total, "limit": 25, "offset": offset},
        currencies=currencies,
        method_options=[(m, METHOD_NAMES[m]) for m in allowed],
        method_names=METHOD_NAMES,
        chosen_method=extra.pop("chosen_method", "platform_credit"),
        detail_labels=DETAIL_LABELS,
        detail_keys=DETAIL_KEYS,
        values=extra.pop("values", {}),
        form=extra.pop("form", ""),
        request_key=secrets.token_hex(12),
        **extra,
    )
    return context


@router.get("/portal/payouts")
async def payout_page(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    return render(request, "portal/payouts.html", await _payouts_context(request, session, viewer))


@router.get("/portal/payouts/method-fields")
async def method_fields(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    method = request.query_params.get("method", "platform_credit")
    method = method if method in PAYOUT_METHODS else "platform_credit"
    context = await _payouts_context(request, session, viewer, chosen_method=method)
    return render(request, "portal/payouts.html", context, block="method_fields")


async def _payout_failure(request: Request, error: AppError | ValidationError, form: str, **extra: Any) -> Response:
    async with write_unit(request) as session:
        viewer = await partner_viewer(request, session)
        context = await _payouts_context(request, session, viewer, form=form, **extra)
    context["errors"] = FormErrors.of(error)
    status = error.status if isinstance(error, AppError) else 422
    return render(request, "portal/payouts.html", context, status_code=status)


@router.post("/portal/payouts/method")
async def set_method(request: Request) -> Response:
    form = await request.form()
    method = text(form, "method")
    currency = text(form, "currency").upper()
    details = {key: text(form, f"detail_{key}", max_length=200) for key in DETAIL_KEYS.get(method, ())}
    try:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            ensure_approved(viewer)
            await payouts.set_method(
                session,
                settings_of(request),
                viewer.partner,
                currency=currency,
                method=method,
                details=details,
                now=utcnow(),
            )
    except AppError as error:
        values = {f"detail_{key}": value for key, value in details.items()}
        return await _payout_failure(request, error, "method", chosen_method=method, values=values)
    return redirect(request, "/portal/payouts?done=method")


@router.post("/portal/payouts/method/confirm")
async def confirm_method(request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            await payouts.confirm_method(
                session, settings_of(request), viewer.partner.id, text(form, "token", max_length=200), now=utcnow()
            )
    except AppError as error:
        return await _payout_failure(request, error, "confirm")
    return redirect(request, "/portal/payouts?done=confirmed")


@router.post("/portal/payouts/request")
async def request_payout(request: Request) -> Response:
    form = await request.form()
    currency = text(form, "currency").upper() or "USD"
    try:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            ensure_approved(viewer)
            amount = to_minor(text(form, "amount"), currency)
            if amount <= 0:
                raise Unprocessable("Enter an amount above zero.", field="amount")
            await payouts.request_payout(
                session,
                settings_of(request),
                viewer.partner,
                amount=amount,
                currency=currency,
                now=utcnow(),
                idempotency_key=f"portal:{text(form, 'request_key', max_length=64)}"
                if text(form, "request_key")
                else None,
            )
    except AppError as error:
        return await _payout_failure(request, error, "request", values={"amount": text(form, "amount")})
    return redirect(request, "/portal/payouts?done=requested")


@router.post("/portal/payouts/{payout_id}/cancel")
async def cancel_payout(payout_id: int, request: Request) -> Response:
    try:
        async with write_unit(request) as session:
            viewer = await partner_viewer(request, session)
            await payouts.cancel_payout(session, viewer.partner.id, payout_id, now=utcnow())
    except AppError as error:
        return await _payout_failure(request, error, "history")
    return redirect(request, "/portal/payouts?done=cancelled")


@router.get("/portal/payouts/{payout_id}/statement.pdf")
async def statement(payout_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    payout = await payouts.get_partner_payout(session, viewer.partner.id, payout_id)
    content = statements.render_pdf(await statements.build_statement(session, payout))
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="payout-{payout.id}.pdf"'},
    )


# --- profile and agreement ------------------------------------------------------------------------------


@router.get("/portal/profile")
async def profile(request: Request, session: SessionDep) -> Response:
    viewer = await partner_viewer(request, session)
    partner = viewer.partner
    agreement = await affiliates.current_agreement(session, partner.program_id)
    acceptance = await affiliates.find_acceptance(session, partner.id, agreement) if agreement else None
    context = portal_context(
        request,
        viewer,
        "profile",
        tier=await affiliates.get_tier(session, partner.tier_id),
        agreement=agreement,
        acceptance=acceptance,
        referral_link=affiliates.referral_link(settings_of(request), partner),
        host=urlsplit(settings_of(request).base_url).netloc,
    )
    return render(request, "portal/profile.html", context)


@router.post("/portal/agreement/accept")
async def accept_agreement(request: Request) -> Response:
    form = await request.form()
    version = text(form, "version")
    async with write_unit(request) as session:
        viewer = await partner_viewer(request, session)
        await affiliates.accept_agreement(
            session,
            viewer.partner,
            int(version) if version.isdigit() else 0,
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    return redirect(request, "/portal/profile?done=agreement")
