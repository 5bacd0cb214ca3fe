"""Authentication dependencies other domains import: `require_staff`, `require_api_key`, `current_session`.

A login session is presented either as `Authorization: Bearer <token>` (the API) or as the session cookie
(pages). A cookie-authenticated unsafe request must also carry the session's CSRF token, in the
`X-CSRF-Token` header or a `csrf_token` form field; bearer requests need none, since browsers never add
that header on their own.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.types import utcnow
from partners.identity import service
from partners.identity.models import AuthSession, StaffUser, SubjectKind
from partners.identity.principals import ApiKeyPrincipal, StaffPrincipal
from partners.identity.roles import ensure_known_permission, ensure_known_scope
from partners.identity.service import Subject
from partners.kit.crypto import keyed_hash
from partners.kit.deps import READ_METHODS, SessionDep, SettingsDep, database_of
from partners.kit.errors import Forbidden, Unauthorized
from partners.settings import Settings

SESSION_COOKIES: dict[SubjectKind, str] = {
    "staff": "partners_staff_session",
    "partner": "partners_partner_session",
}
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"
API_KEY_HEADER = "x-api-key"
API_KEY_MARKER = "npk_"
# last_seen_at / last_used_at are written at most this often per session or key.
TOUCH_INTERVAL = timedelta(seconds=60)
# A host API key verified by this process is trusted this long without reading it again.
API_KEY_TRUST_SECONDS = 5.0
TWO_FACTOR_REQUIRED = (
    "Two-factor authentication is required: enrol with POST /auth/2fa/setup and POST /auth/2fa/confirm, "
    "then log in again with a one-time code."
)

__all__ = [
    "SESSION_COOKIES",
    "ApiKeyPrincipal",
    "CurrentSession",
    "StaffPrincipal",
    "VerifiedApiKeys",
    "authenticate_session",
    "clear_session_cookie",
    "current_session",
    "current_staff_enrolling",
    "forget_api_key",
    "require_api_key",
    "require_staff",
    "set_session_cookie",
]


@dataclass(frozen=True, slots=True)
class CurrentSession(Generic[Subject]):
    auth_session: AuthSession
    subject: Subject  # the session's Partner or StaffUser row
    via_cookie: bool


# --- cookies -------------------------------------------------------------------------------------------


def _cookie_is_secure(request: Request, settings: Settings) -> bool:
    """Secure everywhere except development and test served over plain http."""
    return not (settings.environment in ("development", "test") and request.url.scheme == "http")


def set_session_cookie(
    response: Response, request: Request, settings: Settings, *, subject_kind: SubjectKind, token: str
) -> None:
    response.set_cookie(
        SESSION_COOKIES[subject_kind],
        token,
        max_age=settings.session_max_age_seconds,
        path="/",
        secure=_cookie_is_secure(request, settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(
    response: Response, request: Request, settings: Settings, *, subject_kind: SubjectKind
) -> None:
    response.delete_cookie(
        SESSION_COOKIES[subject_kind],
        path="/",
        secure=_cookie_is_secure(request, settings),
        httponly=True,
        samesite="lax",
    )


# --- sessions ------------------------------------------------------------------------------------------


def _bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def _csrf_token_sent(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FORM_FIELD)
        return value if isinstance(value, str) else None
    return None


async def _ensure_csrf(request: Request, auth_session: AuthSession) -> None:
    sent = await _csrf_token_sent(request)
    if sent is None or not hmac.compare_digest(sent.encode(), auth_session.csrf_token.encode()):
        raise Forbidden(f"missing or wrong CSRF token (send the {CSRF_HEADER} header or a csrf_token field)")


async def _record_use(
    request: Request,
    session: AsyncSession | None,
    write: Callable[[AsyncSession], Awaitable[None]],
    *,
    read_only: bool,
) -> None:
    """Write a last-used time; a read-only unit of work (safe methods) or none (`own_writes` routes) gets a
    write one of its own."""
    if read_only or session is None:
        async with database_of(request).write() as writer:
            await write(writer)
    else:
        await write(session)


async def authenticate_session(
    request: Request, session: AsyncSession, settings: Settings, *, subject_kind: SubjectKind, subject: type[Subject]
) -> CurrentSession[Subject]:
    """The caller's live session of this kind (bearer token first, then the cookie), CSRF checked, and its
    subject's row (`subject`: the model of that kind)."""
    token = _bearer_token(request)
    via_cookie = token is None
    if token is None:
        token = request.cookies.get(SESSION_COOKIES[subject_kind])
    if not token:
        raise Unauthorized("authentication required: log in first")
    if token.startswith(API_KEY_MARKER):
        raise Unauthorized("an API key cannot be used here: log in with a user account")
    now = utcnow()
    found = await service.resolve_session(session, settings, token, subject_kind=subject_kind, subject=subject, now=now)
    if found is None:
        raise Unauthorized("the session is invalid, expired or logged out: log in again")
    auth_session, row = found
    if via_cookie and request.method not in READ_METHODS:
        await _ensure_csrf(request, auth_session)
    if now - auth_session.last_seen_at >= TOUCH_INTERVAL:
        session_id = auth_session.id
        await _record_use(
            request,
            session,
            lambda unit: service.touch_session(unit, session_id, now),
            read_only=request.method in READ_METHODS,
        )
    return CurrentSession(auth_session=auth_session, subject=row, via_cookie=via_cookie)


def current_session(
    subject_kind: SubjectKind, subject: type[Subject]
) -> Callable[..., Awaitable[CurrentSession[Subject]]]:
    """A dependency: the caller's live session of `subject_kind` and its `subject` row (401 without one, 403 on a
    CSRF failure)."""

    async def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> CurrentSession[Subject]:
        return await authenticate_session(request, session, settings, subject_kind=subject_kind, subject=subject)

    return dependency


# --- staff ---------------------------------------------------------------------------------------------


def two_factor_blocks(settings: Settings, auth_session: AuthSession) -> bool:
    return settings.require_staff_2fa and auth_session.two_factor_pending


async def _staff_principal(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    *,
    permission: str | None,
    allow_two_factor_pending: bool,
) -> StaffPrincipal:
    current = await authenticate_session(request, session, settings, subject_kind="staff", subject=StaffUser)
    user = current.subject
    if not user.is_active:
        raise Unauthorized("this account is deactivated")
    if not allow_two_factor_pending and two_factor_blocks(settings, current.auth_session):
        raise Forbidden(TWO_FACTOR_REQUIRED)
    principal = StaffPrincipal(
        user_id=user.id, email=user.email, name=user.name, role=user.role, session_id=current.auth_session.id
    )
    if permission is not None and not principal.can(permission):
        raise Forbidden(f"the {user.role.value} role does not have the {permission!r} permission")
    return principal


def require_staff(permission: str) -> Callable[..., Awaitable[StaffPrincipal]]:
    """A dependency: the logged-in staff member holding `permission` (401 / 403 problem+json otherwise)."""
    ensure_known_permission(permission)

    async def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> StaffPrincipal:
        return await _staff_principal(request, session, settings, permission=permission, allow_two_factor_pending=False)

    return dependency


async def current_staff(request: Request, session: SessionDep, settings: SettingsDep) -> StaffPrincipal:
    """Any logged-in, active staff member, whatever the role."""
    return await _staff_principal(request, session, settings, permission=None, allow_two_factor_pending=False)


async def current_staff_enrolling(request: Request, session: SessionDep, settings: SettingsDep) -> StaffPrincipal:
    """Any logged-in staff member, even one who must still enrol in 2FA (for /auth/me, logout, 2FA setup)."""
    return await _staff_principal(request, session, settings, permission=None, allow_two_factor_pending=True)


# --- host API keys -------------------------------------------------------------------------------------


def _api_key_sent(request: Request) -> str | None:
    header = request.headers.get(API_KEY_HEADER)
    if header:
        return header.strip()
    bearer = _bearer_token(request)
    return bearer if bearer is not None and bearer.startswith(API_KEY_MARKER) else None


@dataclass(slots=True)
class _Verified:
    principal: ApiKeyPrincipal
    last_used_at: datetime | None
    until: float  # time.monotonic()


class VerifiedApiKeys:
    """The host API keys this process verified in the last `API_KEY_TRUST_SECONDS`, by the keyed hash of the
    key sent. A host's server sends every event with its key, and reading the key row on a unit of work of its
    own was a tenth of a purchase event's cost (bench/). A key revoked in this process is forgotten at once; one
    revoked in another process works here for at most `API_KEY_TRUST_SECONDS` more."""

    def __init__(self, trust_seconds: float = API_KEY_TRUST_SECONDS) -> None:
        self.trust_seconds = trust_seconds
        self._keys: dict[str, _Verified] = {}

    def get(self, key_hash: str) -> _Verified | None:
        verified = self._keys.get(key_hash)
        if verified is not None and verified.until < time.monotonic():
            del self._keys[key_hash]
            return None
        return verified

    def put(self, key_hash: str, principal: ApiKeyPrincipal, last_used_at: datetime | None) -> _Verified:
        verified = _Verified(principal, last_used_at, time.monotonic() + self.trust_seconds)
        self._keys[key_hash] = verified
        return verified

    def forget(self, key_id: int) -> None:
        for key_hash in [h for h, verified in self._keys.items() if verified.principal.key_id == key_id]:
            del self._keys[key_hash]


def forget_api_key(request: Request, key_id: int) -> None:
    """A revoked key stops working in this process at once (in the others within `API_KEY_TRUST_SECONDS`)."""
    _verified_api_keys(request).forget(key_id)


def _verified_api_keys(request: Request) -> VerifiedApiKeys:
    keys: VerifiedApiKeys = request.app.state.verified_api_keys
    return keys


async def _verify_api_key(
    request: Request, session: AsyncSession | None, settings: Settings, raw_key: str
) -> _Verified:
    """The key from the process's trusted keys, or read (on `session`, or a read-only unit of work of its own)."""
    cache = _verified_api_keys(request)
    key_hash = keyed_hash(settings, raw_key.strip(), purpose=service.API_KEY_PURPOSE)
    verified = cache.get(key_hash)
    if verified is not None:
        return verified
    if session is None:
        async with database_of(request).read() as reader:
            api_key = await service.verify_api_key(reader, settings, raw_key)
    else:
        api_key = await service.verify_api_key(session, settings, raw_key)
    if api_key is None:
        raise Unauthorized("invalid or revoked API key")
    principal = ApiKeyPrincipal(key_id=api_key.id, name=api_key.name, scopes=frozenset(api_key.scopes))
    return cache.put(key_hash, principal, api_key.last_used_at)


def require_api_key(scope: str, *, own_writes: bool = False) -> Callable[..., Awaitable[ApiKeyPrincipal]]:
    """A dependency: the host API key (X-API-Key or Bearer npk_...) holding `scope` (401 / 403 otherwise).

    `own_writes`: the route writes through a unit of work of its own (purchase events, `events.batching`), so
    none is opened for it: a key trusted already needs none, another is read on a read-only one."""
    ensure_known_scope(scope)

    async def check(
        request: Request, session: AsyncSession | None, settings: Settings, read_only: bool
    ) -> ApiKeyPrincipal:
        raw_key = _api_key_sent(request)
        if raw_key is None:
            raise Unauthorized("an API key is required: send X-API-Key or Authorization: Bearer npk_...")
        verified = await _verify_api_key(request, session, settings, raw_key)
        if scope not in verified.principal.scopes:
            raise Forbidden(f"this API key does not have the {scope!r} scope")
        now = utcnow()
        if verified.last_used_at is None or now - verified.last_used_at >= TOUCH_INTERVAL:
            key_id = verified.principal.key_id
            verified.last_used_at = now
            await _record_use(
                request, session, lambda unit: service.touch_api_key(unit, key_id, now), read_only=read_only
            )
        return verified.principal

    if own_writes:
        # The app's settings read here, not through a dependency of their own: FastAPI solving one more
        # dependency cost ~15 µs of a purchase event's ~150 µs in the HTTP layer (bench/README.md, round 8).
        async def without_unit(request: Request) -> ApiKeyPrincipal:
            return await check(request, None, request.app.state.settings, True)

        return without_unit

    async def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> ApiKeyPrincipal:
        return await check(request, session, settings, request.method in READ_METHODS)

    return dependency
