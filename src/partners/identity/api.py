from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from partners.identity import service
from partners.identity.deps import (
    clear_session_cookie,
    current_staff,
    current_staff_enrolling,
    forget_api_key,
    require_staff,
    set_session_cookie,
    two_factor_blocks,
)
from partners.identity.principals import StaffPrincipal
from partners.identity.roles import ROLE_PERMISSIONS
from partners.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    LoginResponse,
    MeResponse,
    SessionOut,
    StaffCreate,
    StaffUpdate,
    StaffUserOut,
    TwoFactorCode,
    TwoFactorSetupResponse,
)
from partners.kit.deps import DatabaseDep, SessionDep, SettingsDep

router = APIRouter()

AnyStaff = Annotated[StaffPrincipal, Depends(current_staff_enrolling)]
StaffManager = Annotated[StaffPrincipal, Depends(require_staff("staff:manage"))]
ApiKeyManager = Annotated[StaffPrincipal, Depends(require_staff("apikeys:manage"))]


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/login", tags=["auth"])
async def login(
    body: LoginRequest, request: Request, response: Response, database: DatabaseDep, settings: SettingsDep
) -> LoginResponse:
    # Its own unit of work instead of SessionDep: a rejected login must still commit its failed attempt.
    rejection: service.LoginRejected | None = None
    async with database.write() as session:
        try:
            user = await service.authenticate_staff(
                session,
                settings,
                email=body.email,
                password=body.password,
                otp=body.otp,
                ip=_client_ip(request),
            )
        except service.LoginRejected as error:
            rejection = error
        else:
            two_factor_pending = not user.totp_enabled
            token, csrf_token = await service.start_session(
                session,
                settings,
                subject_kind="staff",
                subject_id=user.id,
                ip=_client_ip(request),
                user_agent=request.headers.get("user-agent"),
                two_factor_pending=two_factor_pending,
            )
    if rejection is not None:
        raise rejection
    set_session_cookie(response, request, settings, subject_kind="staff", token=token)
    return LoginResponse(
        token=token,
        csrf_token=csrf_token,
        expires_in=settings.session_max_age_seconds,
        two_factor_pending=two_factor_pending,
        user=StaffUserOut.model_validate(user),
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def logout(
    staff: AnyStaff, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> None:
    await service.revoke_session(session, staff.session_id)
    clear_session_cookie(response, request, settings, subject_kind="staff")


@router.get("/auth/me", tags=["auth"])
async def me(staff: AnyStaff, session: SessionDep, settings: SettingsDep) -> MeResponse:
    user = await service.get_staff_user(session, staff.user_id)
    auth_session = await service.get_auth_session(session, staff.session_id)
    return MeResponse(
        user=StaffUserOut.model_validate(user),
        permissions=sorted(ROLE_PERMISSIONS[user.role]),
        session=SessionOut.model_validate(auth_session),
        two_factor_required=two_factor_blocks(settings, auth_session),
    )


@router.post("/auth/2fa/setup", tags=["auth"])
async def setup_two_factor(staff: AnyStaff, session: SessionDep, settings: SettingsDep) -> TwoFactorSetupResponse:
    secret, uri = await service.begin_totp_setup(session, settings, staff.user_id)
    return TwoFactorSetupResponse(secret=secret, otpauth_uri=uri)


@router.post("/auth/2fa/confirm", tags=["auth"])
async def confirm_two_factor(
    body: TwoFactorCode, staff: AnyStaff, session: SessionDep, settings: SettingsDep
) -> StaffUserOut:
    user = await service.confirm_totp(session, settings, staff.user_id, body.code, session_id=staff.session_id)
    return StaffUserOut.model_validate(user)


@router.post("/auth/2fa/disable", tags=["auth"])
async def disable_two_factor(
    body: TwoFactorCode,
    staff: Annotated[StaffPrincipal, Depends(current_staff)],
    session: SessionDep,
    settings: SettingsDep,
) -> StaffUserOut:
    user = await service.disable_totp(session, settings, staff.user_id, body.code)
    return StaffUserOut.model_validate(user)


@router.get("/admin/staff", tags=["staff"])
async def list_staff(_: StaffManager, session: SessionDep) -> list[StaffUserOut]:
    return [StaffUserOut.model_validate(user) for user in await service.list_staff_users(session)]


@router.post("/admin/staff", status_code=status.HTTP_201_CREATED, tags=["staff"])
async def create_staff(body: StaffCreate, actor: StaffManager, session: SessionDep) -> StaffUserOut:
    user = await service.add_staff_user(
        session, actor, email=body.email, name=body.name, password=body.password, role=body.role
    )
    return StaffUserOut.model_validate(user)


@router.patch("/admin/staff/{user_id}", tags=["staff"])
async def update_staff(user_id: int, body: StaffUpdate, actor: StaffManager, session: SessionDep) -> StaffUserOut:
    user = await service.update_staff_user(
        session, actor, user_id, role=body.role, is_active=body.is_active, name=body.name
    )
    return StaffUserOut.model_validate(user)


@router.get("/admin/api-keys", tags=["api-keys"])
async def list_api_keys(_: ApiKeyManager, session: SessionDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key) for key in await service.list_api_keys(session)]


@router.post("/admin/api-keys", status_code=status.HTTP_201_CREATED, tags=["api-keys"])
async def create_api_key(
    body: ApiKeyCreate, actor: ApiKeyManager, session: SessionDep, settings: SettingsDep
) -> ApiKeyCreated:
    api_key, full_key = await service.create_api_key(
        session, settings, name=body.name, scopes=body.scopes, created_by_id=actor.user_id
    )
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(api_key).model_dump(), "key": full_key})


@router.delete("/admin/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["api-keys"])
async def revoke_api_key(key_id: int, request: Request, _: ApiKeyManager, session: SessionDep) -> None:
    await service.revoke_api_key(session, key_id)
    forget_api_key(request, key_id)
