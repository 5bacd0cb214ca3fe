"""Staff users, login sessions (staff and partner), TOTP and host API keys. Never commits."""

from __future__ import annotations

import hmac
import re
import secrets
import string
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypeVar, cast

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.base import IdMixin
from partners.db.types import utcnow
from partners.identity import passwords, ratelimit, totp
from partners.identity.models import ApiKey, AuthSession, StaffUser, SubjectKind
from partners.identity.principals import StaffPrincipal
from partners.identity.roles import API_KEY_SCOPES, MANAGE_OWNERS, Role
from partners.kit.crypto import decrypt_text, encrypt_text, keyed_hash
from partners.kit.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from partners.settings import Settings

SESSION_TOKEN_PURPOSE = "session-token"
API_KEY_PURPOSE = "api-key"
API_KEY_PREFIX_LENGTH = 8
API_KEY_SECRET_LENGTH = 40
API_KEY_PATTERN = re.compile(r"npk_([a-z0-9]{8})_([A-Za-z0-9]{32,128})")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits

Subject = TypeVar("Subject", bound=IdMixin)


class LoginRejected(Unauthorized):
    """Wrong credentials or one-time code. The caller commits the recorded failure, then raises this."""


INVALID_CREDENTIALS = "Invalid email or password."


def normalise_email(email: str) -> str:
    return email.strip().lower()


# --- staff users -------------------------------------------------------------------------------------


async def get_staff_user(session: AsyncSession, user_id: int) -> StaffUser:
    user = await session.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"staff user {user_id} not found")
    return user


async def find_staff_by_email(session: AsyncSession, email: str) -> StaffUser | None:
    found: StaffUser | None = await session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))
    return found


async def list_staff_users(session: AsyncSession) -> list[StaffUser]:
    return list(await session.scalars(select(StaffUser).order_by(StaffUser.id)))


async def create_staff_user(
    session: AsyncSession, *, email: str, name: str, password: str, role: Role | str
) -> StaffUser:
    """Create a staff user without any actor check (the CLI's create-admin and the admin API use it)."""
    email = normalise_email(email)
    role = _parse_role(role)
    passwords.validate_password(password)
    if await find_staff_by_email(session, email) is not None:
        raise Conflict("a staff user with this email already exists", field="email")
    user = StaffUser(
        email=email,
        name=name.strip(),
        password_hash=await passwords.hash_password(password),
        role=role,
        is_active=True,
        totp_enabled=False,
    )
    session.add(user)
    await session.flush()
    return user


def _parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(member.value for member in Role)
        raise Unprocessable(f"unknown role {role!r}; one of {allowed}", field="role") from None


async def add_staff_user(
    session: AsyncSession, actor: StaffPrincipal, *, email: str, name: str, password: str, role: Role
) -> StaffUser:
    if role == Role.OWNER and not actor.can(MANAGE_OWNERS):
        raise Forbidden("only an owner can create an owner", field="role")
    return await create_staff_user(session, email=email, name=name, password=password, role=role)


async def update_staff_user(
    session: AsyncSession,
    actor: StaffPrincipal,
    user_id: int,
    *,
    role: Role | None = None,
    is_active: bool | None = None,
    name: str | None = None,
) -> StaffUser:
    user = await get_staff_user(session, user_id)
    if (user.role == Role.OWNER or role == Role.OWNER) and not actor.can(MANAGE_OWNERS):
        raise Forbidden("only an owner can change an owner or make someone an owner", field="role")
    if is_active is False and user.id == actor.user_id:
        raise Conflict("you cannot deactivate yourself", field="is_active")
    stops_being_owner = (role is not None and role != Role.OWNER) or is_active is False
    if user.role == Role.OWNER and user.is_active and stops_being_owner:
        await _ensure_another_active_owner(session, user, field="role" if role is not None else "is_active")
    if role is not None:
        user.role = Role(role)
    if name is not None:
        user.name = name.strip()
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        if not is_active:
            await revoke_subject_sessions(session, subject_kind="staff", subject_id=user.id)
    await session.flush()
    return user


async def _ensure_another_active_owner(session: AsyncSession, owner: StaffUser, *, field: str) -> None:
    """Lock every active owner (in id order, so two demotions cannot deadlock) and count them."""
    owners = await session.scalars(
        select(StaffUser.id)
        .where(StaffUser.role == Role.OWNER, StaffUser.is_active.is_(True))
        .order_by(StaffUser.id)
        .with_for_update()
    )
    if not set(owners) - {owner.id}:
        raise Conflict("the last active owner cannot be demoted or deactivated", field=field)


# --- login ---------------------------------------------------------------------------------------------


async def authenticate_staff(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    otp: str | None,
    ip: str,
    now: datetime | None = None,
) -> StaffUser:
    """Check credentials (and the TOTP code when 2FA is on) under the login rate limit.

    Raises RateLimited, or LoginRejected after recording the failed attempt in `session`: the caller must
    commit before answering, or the attempt is not counted.
    """
    now = now or utcnow()
    email = normalise_email(email)
    await ratelimit.ensure_login_allowed(session, settings, subject_kind="staff", email=email, ip=ip, now=now)
    user = await find_staff_by_email(session, email)
    matches, new_hash = await passwords.verify_password(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        await ratelimit.record_attempt(session, settings, subject_kind="staff", email=email, ip=ip, now=now)
        raise LoginRejected(INVALID_CREDENTIALS)
    if user.totp_enabled:
        if not otp:
            raise LoginRejected("a one-time code from your authenticator app is required", field="otp")
        if not _accept_totp_code(settings, user, otp):
            await ratelimit.record_attempt(session, settings, subject_kind="staff", email=email, ip=ip, now=now)
            raise LoginRejected("invalid one-time code", field="otp")
    if new_hash is not None:
        user.password_hash = new_hash
    await ratelimit.clear_failed_logins(session, subject_kind="staff", email=email, ip=ip)
    await session.flush()
    return user


# --- sessions (staff and partner) ----------------------------------------------------------------------


def hash_session_token(settings: Settings, token: str) -> str:
    return keyed_hash(settings, token, purpose=SESSION_TOKEN_PURPOSE)


async def start_session(
    session: AsyncSession,
    settings: Settings,
    *,
    subject_kind: SubjectKind,
    subject_id: int,
    ip: str | None,
    user_agent: str | None,
    two_factor_pending: bool = False,
    now: datetime | None = None,
) -> tuple[str, str]:
    """Open a login session; returns (token, csrf_token). The token is shown once, only its HMAC is kept."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            subject_kind=subject_kind,
            subject_id=subject_id,
            token_hash=hash_session_token(settings, token),
            csrf_token=csrf_token,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.session_max_age_seconds),
            last_seen_at=now,
            ip=ip[:64] if ip else None,
            user_agent=user_agent[:512] if user_agent else None,
            two_factor_pending=two_factor_pending,
        )
    )
    await session.flush()
    return token, csrf_token


# `resolve_session`'s statement for each kind of subject, built once: every authenticated request runs it.
_LIVE_SESSION_QUERIES: dict[type[IdMixin], Select[AuthSession, IdMixin]] = {}


def _live_session_query(subject: type[Subject]) -> Select[AuthSession, Subject]:
    """The parameters: token_hash, subject_kind, now."""
    query = _LIVE_SESSION_QUERIES.get(subject)
    if query is None:
        query = _LIVE_SESSION_QUERIES[subject] = (
            select(AuthSession, subject)
            .join(subject, subject.id == AuthSession.subject_id)
            .where(
                AuthSession.token_hash == bindparam("token_hash"),
                AuthSession.subject_kind == bindparam("subject_kind"),
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > bindparam("now"),
            )
        )
    return cast("Select[AuthSession, Subject]", query)


async def resolve_session(
    session: AsyncSession,
    settings: Settings,
    token: str,
    *,
    subject_kind: SubjectKind,
    subject: type[Subject],
    now: datetime | None = None,
) -> tuple[AuthSession, Subject] | None:
    """The live (not expired, not revoked) session of this kind that the token opens and its subject's row (a
    `subject`: Partner or StaffUser), read in one statement; None without either. Every authenticated request
    starts here: reading the subject with a statement of its own cost a worker 0.3-0.5 ms of CPU more per request
    (bench/README.md, round 12)."""
    now = now or utcnow()
    found = (
        await session.execute(
            _live_session_query(subject),
            {"token_hash": hash_session_token(settings, token), "subject_kind": subject_kind, "now": now},
        )
    ).one_or_none()
    return None if found is None else (found[0], found[1])


async def get_auth_session(session: AsyncSession, session_id: int) -> AuthSession:
    auth_session = await session.get(AuthSession, session_id)
    if auth_session is None:
        raise NotFound(f"session {session_id} not found")
    return auth_session


async def touch_session(session: AsyncSession, session_id: int, now: datetime | None = None) -> None:
    await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=now or utcnow()))


async def revoke_session(session: AsyncSession, session_id: int, now: datetime | None = None) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )


async def revoke_subject_sessions(
    session: AsyncSession, *, subject_kind: SubjectKind, subject_id: int, now: datetime | None = None
) -> None:
    await session.execute(
        update(AuthSession)
        .where(
            AuthSession.subject_kind == subject_kind,
            AuthSession.subject_id == subject_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now or utcnow())
    )


# --- TOTP two-factor authentication --------------------------------------------------------------------


def _accept_totp_code(settings: Settings, user: StaffUser, code: str) -> bool:
    """Check a code against the user's secret; on success remember its time step so it is not reused."""
    if user.totp_secret_encrypted is None:
        return False
    secret = decrypt_text(settings, user.totp_secret_encrypted)
    timecode = totp.matching_timecode(secret, code, after=user.totp_last_timecode)
    if timecode is None:
        return False
    user.totp_last_timecode = timecode
    return True


async def begin_totp_setup(session: AsyncSession, settings: Settings, user_id: int) -> tuple[str, str]:
    """A fresh secret, stored encrypted and not yet enabled. Returns (secret, otpauth URI)."""
    user = await get_staff_user(session, user_id)
    if user.totp_enabled:
        raise Conflict("two-factor authentication is already enabled; disable it first")
    secret = totp.new_secret()
    user.totp_secret_encrypted = encrypt_text(settings, secret)
    user.totp_last_timecode = None
    await session.flush()
    return secret, totp.provisioning_uri(secret, user.email)


async def confirm_totp(
    session: AsyncSession, settings: Settings, user_id: int, code: str, *, session_id: int
) -> StaffUser:
    """Enable 2FA once a code from the new secret checks out; the current session counts as verified."""
    user = await get_staff_user(session, user_id)
    if user.totp_enabled:
        raise Conflict("two-factor authentication is already enabled")
    if user.totp_secret_encrypted is None:
        raise Conflict("start with POST /auth/2fa/setup")
    if not _accept_totp_code(settings, user, code):
        raise Unprocessable("invalid one-time code", field="code")
    user.totp_enabled = True
    await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(two_factor_pending=False))
    await session.flush()
    return user


async def disable_totp(session: AsyncSession, settings: Settings, user_id: int, code: str) -> StaffUser:
    if settings.require_staff_2fa:
        raise Forbidden("two-factor authentication is required for staff here and cannot be disabled")
    user = await get_staff_user(session, user_id)
    if not user.totp_enabled:
        raise Conflict("two-factor authentication is not enabled")
    if not _accept_totp_code(settings, user, code):
        raise Unprocessable("invalid one-time code", field="code")
    user.totp_enabled = False
    user.totp_secret_encrypted = None
    await session.flush()
    return user


# --- host API keys -------------------------------------------------------------------------------------


def _validated_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in API_KEY_SCOPES]
    if unknown:
        allowed = ", ".join(sorted(API_KEY_SCOPES))
        raise Unprocessable(f"unknown scope {unknown[0]!r}; allowed: {allowed}", field="scopes")
    if not chosen:
        raise Unprocessable("at least one scope is required", field="scopes")
    return chosen


def _random_string(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def create_api_key(
    session: AsyncSession, settings: Settings, *, name: str, scopes: Iterable[str], created_by_id: int | None
) -> tuple[ApiKey, str]:
    """Returns (stored key, full key). The full key exists only in this return value."""
    prefix = _random_string(_PREFIX_ALPHABET, API_KEY_PREFIX_LENGTH)
    full_key = f"npk_{prefix}_{_random_string(_SECRET_ALPHABET, API_KEY_SECRET_LENGTH)}"
    api_key = ApiKey(
        name=name.strip(),
        prefix=prefix,
        key_hash=keyed_hash(settings, full_key, purpose=API_KEY_PURPOSE),
        scopes=_validated_scopes(scopes),
        created_by_id=created_by_id,
    )
    session.add(api_key)
    await session.flush()
    return api_key, full_key


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def revoke_api_key(session: AsyncSession, key_id: int, now: datetime | None = None) -> ApiKey:
    api_key = await session.get(ApiKey, key_id)
    if api_key is None:
        raise NotFound(f"API key {key_id} not found")
    if api_key.revoked_at is None:
        api_key.revoked_at = now or utcnow()
        await session.flush()
    return api_key


async def verify_api_key(session: AsyncSession, settings: Settings, raw_key: str) -> ApiKey | None:
    """The live key matching `raw_key`, or None (malformed, unknown, wrong secret, revoked)."""
    match = API_KEY_PATTERN.fullmatch(raw_key.strip())
    if match is None:
        return None
    api_key: ApiKey | None = await session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1)))
    if api_key is None or api_key.revoked_at is not None:
        return None
    expected = keyed_hash(settings, match.group(0), purpose=API_KEY_PURPOSE)
    return api_key if hmac.compare_digest(expected, api_key.key_hash) else None


async def touch_api_key(session: AsyncSession, key_id: int, now: datetime | None = None) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now or utcnow()))
