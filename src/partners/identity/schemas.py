from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, computed_field

from partners.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from partners.identity.roles import Role


class LoginRequest(BaseModel):
    # A plain string, not EmailStr: a malformed address gets the same 401 as a wrong password.
    email: str = Field(max_length=320)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    otp: str | None = Field(default=None, max_length=16)


class StaffUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: Role
    is_active: bool
    totp_enabled: bool
    created_at: datetime


class LoginResponse(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    csrf_token: str
    expires_in: int = Field(description="seconds until the session expires")
    two_factor_pending: bool
    user: StaffUserOut


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    expires_at: datetime
    two_factor_pending: bool
    csrf_token: str


class MeResponse(BaseModel):
    user: StaffUserOut
    permissions: list[str]
    session: SessionOut
    two_factor_required: bool = Field(description="true while this session must enrol in 2FA first")


class TwoFactorSetupResponse(BaseModel):
    secret: str
    otpauth_uri: str


class TwoFactorCode(BaseModel):
    code: str = Field(min_length=6, max_length=16)


class StaffCreate(BaseModel):
    email: EmailStr
    name: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    role: Role


class StaffUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    role: Role | None = None
    is_active: bool | None = None


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    scopes: list[str] = Field(min_length=1, max_length=16)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_by_id: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def masked_key(self) -> str:
        return f"npk_{self.prefix}_" + "*" * 8


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the full key; shown this once and never again")
