"""Staff console: the staff member's own two-factor authentication (set up with a QR code, confirm, disable).

The same identity service calls as POST /auth/2fa/setup, /confirm and /disable. A set-up that is started but
not confirmed keeps its secret (encrypted) on the user, so reloading the page shows the same QR code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from partners.identity import service as identity
from partners.identity import totp
from partners.kit.crypto import decrypt_text
from partners.kit.deps import SessionDep
from partners.kit.errors import AppError
from partners.web.console import CONSOLE_NOTICES, console_context
from partners.web.pages import (
    FormErrors,
    PageRoute,
    StaffViewer,
    redirect,
    render,
    settings_of,
    staff_viewer,
    text,
    write_unit,
)
from partners.web.portal import qr_svg

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE = "/console/security"
CONSOLE_NOTICES.update(
    {
        "2fa-started": "Scan the QR code with your authenticator app, then enter the code it shows.",
        "2fa-enabled": "Two-factor authentication is on. You will need a code each time you log in.",
        "2fa-disabled": "Two-factor authentication is off.",
    }
)


async def _context(
    request: Request, session: AsyncSession, viewer: StaffViewer, errors: FormErrors | None = None
) -> dict[str, Any]:
    user = await identity.get_staff_user(session, viewer.principal.user_id)
    secret = uri = qr = None
    if not user.totp_enabled and user.totp_secret_encrypted is not None:
        secret = decrypt_text(settings_of(request), user.totp_secret_encrypted)
        uri = totp.provisioning_uri(secret, user.email)
        qr = qr_svg(uri)
    return console_context(
        request,
        viewer,
        "security",
        enabled=user.totp_enabled,
        required=settings_of(request).require_staff_2fa,
        secret=secret,
        otpauth_uri=uri,
        qr=qr,
        errors=errors or FormErrors(),
    )


@router.get(PAGE)
async def security_page(request: Request, session: SessionDep) -> Response:
    viewer = await staff_viewer(request, session, enrolling=True)
    return render(request, "console/security.html", await _context(request, session, viewer))


async def _failed(request: Request, error: AppError) -> Response:
    async with write_unit(request) as session:
        viewer = await staff_viewer(request, session, enrolling=True)
        context = await _context(request, session, viewer, FormErrors.of(error))
    return render(request, "console/security.html", context, status_code=error.status)


@router.post(f"{PAGE}/setup")
async def start_setup(request: Request) -> Response:
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, enrolling=True)
            await identity.begin_totp_setup(session, settings_of(request), viewer.principal.user_id)
    except AppError as error:
        return await _failed(request, error)
    return redirect(request, f"{PAGE}?done=2fa-started")


@router.post(f"{PAGE}/confirm")
async def confirm(request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session, enrolling=True)
            await identity.confirm_totp(
                session,
                settings_of(request),
                viewer.principal.user_id,
                text(form, "code", max_length=16),
                session_id=viewer.principal.session_id,
            )
    except AppError as error:
        return await _failed(request, error)
    return redirect(request, f"{PAGE}?done=2fa-enabled")


@router.post(f"{PAGE}/disable")
async def disable(request: Request) -> Response:
    form = await request.form()
    try:
        async with write_unit(request) as session:
            viewer = await staff_viewer(request, session)
            await identity.disable_totp(
                session, settings_of(request), viewer.principal.user_id, text(form, "code", max_length=16)
            )
    except AppError as error:
        return await _failed(request, error)
    return redirect(request, f"{PAGE}?done=2fa-disabled")
