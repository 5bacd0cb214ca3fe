from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import JSON, BigInteger, Boolean, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, UTCDateTime
from partners.identity.roles import Role

SubjectKind = Literal["staff", "partner"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("staff", "partner")


class StaffUser(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "staff_users"

    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda roles: [r.value for r in roles]),
        nullable=False,
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Fernet ciphertext (partners.kit.crypto); set at 2FA setup, enabled only after a confirmed code.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(512), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # TOTP time step of the last accepted code: a code is never accepted twice.
    totp_last_timecode: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuthSession(IdMixin, CreatedAtMixin, Base):
    """A login session of a staff user or a partner. Only the HMAC of the token is stored."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_subject", "subject_kind", "subject_id"),)

    subject_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    subject_id: Mapped[int] = mapped_column(BigId, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # True while no second factor has been verified in this session. Under PARTNERS_REQUIRE_STAFF_2FA such
    # a session may only enrol in 2FA, read /auth/me and log out.
    two_factor_pending: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class ApiKey(IdMixin, CreatedAtMixin, Base):
    """A host API key `npk_<prefix>_<secret>`: the prefix finds it, the HMAC of the whole key proves it."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(255), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"), nullable=True
    )
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginAttempt(IdMixin, CreatedAtMixin, Base):
    """A failed login, counted per email and per IP over the rate-limit window. Old rows are pruned."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email", "subject_kind", "email", "created_at"),
        Index("ix_login_attempts_ip", "subject_kind", "ip", "created_at"),
        Index("ix_login_attempts_created_at", "created_at"),
    )

    subject_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    ip: Mapped[str] = mapped_column(String(64), nullable=False)
