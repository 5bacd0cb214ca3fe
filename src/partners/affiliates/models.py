"""Partners (every partner is an affiliate first), their agreements and one-time tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, UTCDateTime

PARTNER_STATUSES = ("pending", "approved", "rejected", "suspended", "banned")


class Partner(IdMixin, CreatedAtMixin, Base):
    """A partner. `parent_id` is the recruiter (set once, at registration, to an existing partner, so
    the tree has no cycles); three levels of it are paid. `external_id` is the host's user id for
    host-enrolled partners."""

    __tablename__ = "partners"

    program_id: Mapped[int] = mapped_column(BigId, ForeignKey("programs.id"), nullable=False, index=True)
    tier_id: Mapped[int] = mapped_column(BigId, ForeignKey("tiers.id"), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("partners.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="affiliate")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    email: Mapped[str] = mapped_column(String(254), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    website: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    audience: Mapped[str] = mapped_column(Text, nullable=False, default="")
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    referral_code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status_reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class AgreementVersion(IdMixin, CreatedAtMixin, Base):
    """Versioned partner terms per program; the highest published version is the current one."""

    __tablename__ = "agreement_versions"
    __table_args__ = (UniqueConstraint("program_id", "version"),)

    program_id: Mapped[int] = mapped_column(BigId, ForeignKey("programs.id"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)


class AgreementAcceptance(IdMixin, Base):
    __tablename__ = "agreement_acceptances"
    __table_args__ = (UniqueConstraint("partner_id", "agreement_version_id"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, index=True)
    agreement_version_id: Mapped[int] = mapped_column(BigId, ForeignKey("agreement_versions.id"), nullable=False)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ip: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    user_agent: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class PartnerToken(IdMixin, CreatedAtMixin, Base):
    """One-time tokens sent by email (verify_email, reset_password). Only the hash is stored."""

    __tablename__ = "partner_tokens"

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
