"""Staff console: programmes and tiers, the disputes queue, staff users and roles, host API keys, settings."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service as affiliates
from partners.audit.service import entries_for
from partners.db.types import utcnow
from partners.disputes import service as disputes
from partners.disputes.schemas import ResolveIn
from partners.identity import service as identity
from partners.identity.deps import forget_api_key
from partners.identity.roles import API_KEY_SCOPES, Role
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError, Unprocessable
from partners.programs import service as programs
from partners.programs.schemas import ProgramCreate, ProgramUpdate, TierCreate, TierUpdate
from partners.web import reports
from partners.web.console import CONSOLE_NOTICES, actor, console_context
from partners.web.pages import (
    FormErrors,
    PageRoute,
    StaffViewer,
    redirect,
    render,
    settings_of,
    staff_viewer,
    text,
    to_minor,
    write_unit,
)
from partners.web.portal_disputes import download

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CONSOLE_NOTICES.update(
    {
        "program": "Programme saved.",
        "program-created": "Programme created.",
        "tier": "Tier saved.",
        "tier-created": "Tier added.",
        "agreement": "New agreement version published; partners must accept it again.",
        "reply": "Reply sent to the partner.",
        "resolved": "Dispute decided; the partner has been emailed.",
        "staff-added": "Staff member added.",
        "staff-updated": "Staff member updated.",
        "key-revoked": "API key revoked.",
    }
)
BOOL_FIELDS = ("auto_approve", "active", "host_enrol_auto_approve", "allow_crypto_payouts")


async def _failed(request: Request, active: str, back: str, error: AppError | ValidationError) -> Response:
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session)
    context = console_context(request, viewer, active, errors=FormErrors.of(error), back=back)
    status = error.status if isinstance(error, AppError) else 422
    return render(request, "console/failed.html", context, status_code=status)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Unprocessable(f"Unknown role {value!r}.", field="role") from None


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


# --- programmes and tiers -------------------------------------------------------------------------------


@router.get("/console/programs")
async def program_list(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "programs:read")
    found = await programs.list_programs(session)
    if len(found) == 1:
        return redirect(request, f"/console/programs/{found[0].id}")
    return render(request, "console/programs.html", console_context(request, viewer, "programs", programs=found))


@router.get("/console/programs/new")
async def new_program_page(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "programs:write")
    context = console_context(request, viewer, "programs", values={"currency": "USD", "with_default_tiers": True})
    return render(request, "console/program_new.html", context)


@router.post("/console/programs")
async def create_program(request: Request) -> Response:
    form = await request.form()
    values: dict[str, Any] = {name: text(form, name, max_length=200) for name in ("slug", "name", "currency")}
    values["with_default_tiers"] = form.get("with_default_tiers") == "on"
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            body = ProgramCreate.model_validate(values)
            fields = body.model_dump(exclude_none=True)
            fields["currency"] = body.currency.upper()
            program = await programs.create_program(session, settings_of(request), actor(viewer), **fields)
    except (AppError, ValidationError) as error:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
        context = console_context(request, viewer, "programs", values=values, errors=FormErrors.of(error))
        return render(request, "console/program_new.html", context, status_code=_status(error))
    return redirect(request, f"/console/programs/{program.id}?done=program-created")


def _status(error: AppError | ValidationError) -> int:
    return error.status if isinstance(error, AppError) else 422


async def _program_context(
    request: Request, session: AsyncSession, viewer: StaffViewer, program_id: int, **extra: Any
) -> dict[str, Any]:
    program = await programs.get_program(session, program_id)
    entries = await entries_for(session, "program", program.id)
    return console_context(
        request,
        viewer,
        "programs",
        program=program,
        tiers=await programs.list_tiers(session, program.id),
        agreement=await affiliates.current_agreement(session, program.id),
        entries=list(reversed(entries))[:20],
        names=await reports.staff_names(session),
        failed_form=extra.pop("failed_form", ""),
        values=extra.pop("values", {}),
        **extra,
    )


@router.get("/console/programs/{program_id}")
async def program_detail(program_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "programs:read")
    return render(request, "console/program.html", await _program_context(request, session, viewer, program_id))


async def _program_form_failed(
    request: Request, program_id: int, form_key: str, values: dict[str, Any], error: AppError | ValidationError
) -> Response:
    """The programme page again, with the error next to the field of the form that failed."""
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session, "programs:read")
        context = await _program_context(
            request, session, viewer, program_id, failed_form=form_key, values=values, errors=FormErrors.of(error)
        )
    return render(request, "console/program.html", context, status_code=_status(error))


def _program_changes(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": text(form, "name", max_length=200),
        "cookie_window_days": text(form, "cookie_window_days"),
        "attribution_model": text(form, "attribution_model"),
        "allowed_destination_hosts": _list(text(form, "allowed_destination_hosts")),
        "auto_approve_countries": [c.upper() for c in _list(text(form, "auto_approve_countries"))],
        "payout_schedule": text(form, "payout_schedule"),
        "payout_day": text(form, "payout_day"),
        "welcome_reward_kind": text(form, "welcome_reward_kind"),
        "welcome_reward_value": text(form, "welcome_reward_value") or "0",
    }
    values.update({name: form.get(name) == "on" for name in BOOL_FIELDS})
    return ProgramUpdate.model_validate(values).changes()


@router.post("/console/programs/{program_id}")
async def update_program(program_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            changes = _program_changes(form)
            for name in BOOL_FIELDS:  # changes() drops False; a cleared box must still save
                changes[name] = form.get(name) == "on"
            await programs.update_program(session, actor(viewer), program_id, **changes)
    except (AppError, ValidationError) as error:
        return await _program_form_failed(request, program_id, "program", _raw_form(form), error)
    return redirect(request, f"/console/programs/{program_id}?done=program")


RATE_FIELDS = ("base_rate_bps", "ceiling_rate_bps", "level2_rate_bps", "level3_rate_bps", "hold_days")


def _json_field(form: Any, name: str, empty: Any) -> Any:
    raw = text(form, name, max_length=20_000)
    if not raw:
        return empty
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise Unprocessable(f"This is not valid JSON ({error.msg}).", field=name) from None


def _tier_values(form: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The submitted tier form as the API's body: numbers as text, steps and rule as parsed JSON."""
    values: dict[str, Any] = {name: text(form, name, max_length=100) for name in names}
    values["can_recruit"] = form.get("can_recruit") == "on"
    values["bonus_steps"] = _json_field(form, "bonus_steps", [])
    values["promotion_rule"] = _json_field(form, "promotion_rule", {})
    return values


def _raw_form(form: Any) -> dict[str, str]:
    return {name: value for name, value in form.items() if isinstance(value, str) and name != "csrf_token"}


@router.post("/console/programs/{program_id}/tiers")
async def create_tier(program_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            values = {k: v for k, v in _tier_values(form, ("key", "name", "rank", *RATE_FIELDS)).items() if v != ""}
            body = TierCreate.model_validate(values)
            await programs.create_tier(session, actor(viewer), program_id, **body.values())
    except (AppError, ValidationError) as error:
        return await _program_form_failed(request, program_id, "new-tier", _raw_form(form), error)
    return redirect(request, f"/console/programs/{program_id}?done=tier-created")


@router.post("/console/tiers/{tier_id}")
async def update_tier(tier_id: int, request: Request) -> Response:
    form = await request.form()
    async with write_unit(request) as session:
        await staff_viewer(request, session, "programs:read")
        program_id = (await programs.get_tier(session, tier_id)).program_id
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            changes = TierUpdate.model_validate(_tier_values(form, ("name", *RATE_FIELDS))).changes()
            await programs.update_tier(session, actor(viewer), tier_id, **changes)
    except (AppError, ValidationError) as error:
        return await _program_form_failed(request, program_id, f"tier-{tier_id}", _raw_form(form), error)
    return redirect(request, f"/console/programs/{program_id}?done=tier")


@router.post("/console/programs/{program_id}/agreement")
async def publish_agreement(program_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        title, body = text(form, "title", max_length=200), text(form, "body", max_length=200_000)
        if not title or not body:
            raise Unprocessable("An agreement needs a title and a text.", field="body")
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "programs:write")
            await affiliates.publish_agreement(session, program_id, title=title, body=body, actor=actor(viewer))
    except AppError as error:
        return await _failed(request, "programs", f"/console/programs/{program_id}", error)
    return redirect(request, f"/console/programs/{program_id}?done=agreement")


# --- disputes -------------------------------------------------------------------------------------------


@router.get("/console/disputes")
async def dispute_queue(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "disputes:read")
    settings = settings_of(request)
    show = request.query_params.get("show", "open")
    where = disputes.QueueFilter(
        closed=None if show == "all" else show == "closed",
        breached=True if show == "breached" else None,
    )
    now = utcnow()
    rows, total = await disputes.list_queue(session, settings, where, now=now, limit=100, offset=0)
    context = console_context(
        request,
        viewer,
        "disputes",
        rows=[
            {"dispute": d, "sla": disputes.sla_of(d, target_hours=settings.dispute_sla_hours, now=now)} for d in rows
        ],
        total=total,
        show=show,
        partner_names=await reports.partner_names(session, {d.partner_id for d in rows}),
    )
    return render(request, "console/disputes.html", context)


@router.get("/console/disputes/{dispute_id}")
async def dispute_detail(dispute_id: int, request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "disputes:read")
    settings = settings_of(request)
    dispute = await disputes.get_dispute(session, dispute_id)
    context = console_context(
        request,
        viewer,
        "disputes",
        dispute=dispute,
        partner=await affiliates.get_partner(session, dispute.partner_id),
        messages=await disputes.messages_of(session, dispute.id),
        evidence=await disputes.evidence_of(session, dispute.id),
        sla=disputes.sla_of(dispute, target_hours=settings.dispute_sla_hours, now=utcnow()),
        names=await reports.staff_names(session),
        entries=list(reversed(await entries_for(session, "dispute", dispute.id))),
    )
    return render(request, "console/dispute.html", context)


@router.get("/console/disputes/{dispute_id}/evidence/{evidence_id}")
async def dispute_evidence(dispute_id: int, evidence_id: int, request: Request, session: SessionDep) -> Response:
    await staff_viewer(request, session, "disputes:read")
    dispute = await disputes.get_dispute(session, dispute_id)
    return download(await disputes.evidence_file(session, dispute.id, evidence_id))


@router.post("/console/disputes/{dispute_id}/reply")
async def dispute_reply(dispute_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        body = text(form, "body")
        if not body:
            raise Unprocessable("Write the reply first.", field="body")
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "disputes:write")
            await disputes.staff_reply(
                session, settings_of(request), actor(viewer), dispute_id=dispute_id, body=body, now=utcnow()
            )
    except AppError as error:
        return await _failed(request, "disputes", f"/console/disputes/{dispute_id}", error)
    return redirect(request, f"/console/disputes/{dispute_id}?done=reply")


def _decision(form: Any, currency: str) -> ResolveIn:
    decision = text(form, "decision")
    remedy = text(form, "remedy") if decision == "accept" else ""
    amount = text(form, "amount")
    purchase_amount = text(form, "purchase_amount")
    return ResolveIn.model_validate(
        {
            "decision": decision,
            "remedy": remedy or None,
            "reason": text(form, "reason", max_length=2000),
            "amount": to_minor(amount, currency, "amount") if amount else None,
            "purchase_amount": to_minor(purchase_amount, currency, "purchase_amount") if purchase_amount else None,
        }
    )


@router.post("/console/disputes/{dispute_id}/resolve")
async def dispute_resolve(dispute_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "disputes:write")
            dispute = await disputes.get_dispute(session, dispute_id)
            decision = _decision(form, dispute.currency or "USD")
            await disputes.resolve(session, settings_of(request), actor(viewer), dispute_id, decision, now=utcnow())
    except (AppError, ValidationError) as error:
        return await _failed(request, "disputes", f"/console/disputes/{dispute_id}", error)
    return redirect(request, f"/console/disputes/{dispute_id}?done=resolved")


# --- staff ----------------------------------------------------------------------------------------------


async def _staff_context(request: Request, viewer: StaffViewer, session: Any, **extra: Any) -> dict[str, Any]:
    return console_context(
        request,
        viewer,
        "staff",
        users=await identity.list_staff_users(session),
        roles=[role.value for role in Role],
        values=extra.pop("values", {}),
        **extra,
    )


@router.get("/console/staff")
async def staff_list(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "staff:manage")
    return render(request, "console/staff.html", await _staff_context(request, viewer, session))


@router.post("/console/staff")
async def add_staff(request: Request) -> Response:
    form = await request.form()
    values = {name: text(form, name) for name in ("email", "name", "role")}
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "staff:manage")
            if not values["name"]:
                raise Unprocessable("Enter the person's name.", field="name")
            await identity.add_staff_user(
                session,
                viewer.principal,
                email=values["email"],
                name=values["name"],
                password=text(form, "password"),
                role=_role(values["role"]),
            )
    except AppError as error:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "staff:manage")
            context = await _staff_context(request, viewer, session, values=values, errors=FormErrors.of(error))
        return render(request, "console/staff.html", context, status_code=error.status)
    return redirect(request, "/console/staff?done=staff-added")


@router.post("/console/staff/{user_id}")
async def update_staff(user_id: int, request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "staff:manage")
            role = text(form, "role")
            await identity.update_staff_user(
                session,
                viewer.principal,
                user_id,
                role=_role(role) if role else None,
                is_active=form.get("is_active") == "on",
            )
    except AppError as error:
        return await _failed(request, "staff", "/console/staff", error)
    return redirect(request, "/console/staff?done=staff-updated")


# --- API keys -------------------------------------------------------------------------------------------


async def _keys_context(request: Request, viewer: StaffViewer, session: Any, **extra: Any) -> dict[str, Any]:
    return console_context(
        request,
        viewer,
        "api-keys",
        keys=await identity.list_api_keys(session),
        scopes=sorted(API_KEY_SCOPES),
        names={int(k): v for k, v in (await reports.staff_names(session)).items()},
        created_key=extra.pop("created_key", None),
        **extra,
    )


@router.get("/console/api-keys")
async def api_keys(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "apikeys:manage")
    return render(request, "console/api_keys.html", await _keys_context(request, viewer, session))


@router.post("/console/api-keys")
async def create_api_key(request: Request) -> Response:
    """The full key is shown on this response only (it is never stored): no redirect here."""
    form = await request.form()
    scopes = [scope for scope in form.getlist("scopes") if isinstance(scope, str)]
    try:
        name = text(form, "name", max_length=255)
        if not name:
            raise Unprocessable("Name the key (say, which system uses it).", field="name")
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "apikeys:manage")
            _key, full_key = await identity.create_api_key(
                session, settings_of(request), name=name, scopes=scopes, created_by_id=viewer.principal.user_id
            )
    except AppError as error:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, "apikeys:manage")
            context = await _keys_context(request, viewer, session, errors=FormErrors.of(error))
        return render(request, "console/api_keys.html", context, status_code=error.status)
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session, "apikeys:manage")
        context = await _keys_context(request, viewer, session, created_key=full_key)
    return render(request, "console/api_keys.html", context, status_code=201)


@router.post("/console/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: int, request: Request) -> Response:
    try:
        async with write_unit(request) as session:
            await staff_viewer(request, session, "apikeys:manage")
            await identity.revoke_api_key(session, key_id)
        forget_api_key(request, key_id)
    except AppError as error:
        return await _failed(request, "api-keys", "/console/api-keys", error)
    return redirect(request, "/console/api-keys?done=key-revoked")


# --- settings (read only) -------------------------------------------------------------------------------


SHOWN_SETTINGS = (
    ("environment", "PARTNERS_ENV"),
    ("base_url", "PARTNERS_BASE_URL"),
    ("embedded_worker", "PARTNERS_EMBEDDED_WORKER"),
    ("require_staff_2fa", "PARTNERS_REQUIRE_STAFF_2FA"),
    ("session_max_age_seconds", "PARTNERS_SESSION_MAX_AGE"),
    ("login_rate_limit", "PARTNERS_LOGIN_RATE_LIMIT"),
    ("email_backend", "PARTNERS_EMAIL_BACKEND"),
    ("email_from", "PARTNERS_EMAIL_FROM"),
    ("affiliate_commission_rates", "AFFILIATE_COMMISSION_RATES"),
    ("payout_minimum_amount", "PAYOUT_MINIMUM_AMOUNT"),
    ("commission_calculation_frequency", "COMMISSION_CALCULATION_FREQUENCY"),
    ("payout_details_cooldown_hours", "PARTNERS_PAYOUT_DETAILS_COOLDOWN_HOURS"),
    ("payout_second_approval_amount", "PARTNERS_PAYOUT_SECOND_APPROVAL_AMOUNT"),
    ("dispute_sla_hours", "PARTNERS_DISPUTE_SLA_HOURS"),
    ("demo_shop", "PARTNERS_DEMO_SHOP"),
)


@router.get("/console/settings")
async def settings_page(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, "reports:read")
    settings = settings_of(request)
    rows = [(variable, getattr(settings, name, "")) for name, variable in SHOWN_SETTINGS]
    database = settings.database_url.split("://", 1)[0]
    context = console_context(request, viewer, "settings", rows=rows, database=database)
    return render(request, "console/settings.html", context)
