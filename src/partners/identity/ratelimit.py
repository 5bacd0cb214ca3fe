"""Attempt counting in the database, so every API process sees the same counters.

A login is refused while the email, or the IP, has `login_rate_limit` failures inside the last
`login_rate_window_seconds`. A success clears only the failures of that (email, IP) pair: it does not
forgive another IP that has been guessing the same email.

The same limit and window apply to the requests that send email to an address the caller typed — partner
applications (counted per IP: each sends a verification email) and password-reset requests (per email and per
IP) — so nobody can make the platform mail-bomb an inbox or fill the applications queue.

Counting is check-then-insert, so a burst of parallel guesses can overshoot the limit by the number of
requests in flight; each of them still pays an argon2 verification.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from partners.identity.models import LoginAttempt
from partners.kit.errors import RateLimited
from partners.settings import Settings

REGISTRATION = "registration"
PASSWORD_RESET = "password-reset"


async def ensure_login_allowed(
    session: AsyncSession, settings: Settings, *, subject_kind: str, email: str, ip: str, now: datetime
) -> None:
    """Raise RateLimited (429 with Retry-After) while the email or the IP is over the limit."""
    await ensure_allowed(
        session,
        settings,
        subject_kind=subject_kind,
        email=email,
        ip=ip,
        now=now,
        message="Too many failed logins. Try again later.",
    )


async def ensure_allowed(
    session: AsyncSession,
    settings: Settings,
    *,
    subject_kind: str,
    email: str | None,
    ip: str,
    now: datetime,
    message: str,
) -> None:
    """Raise RateLimited (429 with Retry-After) while the IP, or the email if given, is over the limit."""
    counted = [(LoginAttempt.ip, ip)] + ([(LoginAttempt.email, email)] if email is not None else [])
    lifted_at = [
        moment
        for column, value in counted
        if (moment := await _limit_lifts_at(session, settings, column, value, subject_kind, now)) is not None
    ]
    if lifted_at:
        retry_after = max(1, math.ceil((max(lifted_at) - now).total_seconds()))
        raise RateLimited(message, extra={"retry_after": retry_after})


async def _limit_lifts_at(
    session: AsyncSession,
    settings: Settings,
    column: InstrumentedAttribute[str],
    value: str,
    subject_kind: str,
    now: datetime,
) -> datetime | None:
    """If limited, when the failure that keeps the count at the limit leaves the window; else None."""
    window = timedelta(seconds=settings.login_rate_window_seconds)
    recent = await session.scalars(
        select(LoginAttempt.created_at)
        .where(LoginAttempt.subject_kind == subject_kind, column == value, LoginAttempt.created_at > now - window)
        .order_by(LoginAttempt.created_at.desc())
        .limit(settings.login_rate_limit)
    )
    times = list(recent)
    return times[-1] + window if len(times) >= settings.login_rate_limit else None


async def record_attempt(
    session: AsyncSession, settings: Settings, *, subject_kind: str, email: str, ip: str, now: datetime
) -> None:
    """Count an attempt (a failed login, an application, a reset request); prunes those out of the window."""
    window = timedelta(seconds=settings.login_rate_window_seconds)
    await session.execute(delete(LoginAttempt).where(LoginAttempt.created_at <= now - window))
    session.add(LoginAttempt(subject_kind=subject_kind, email=email, ip=ip, created_at=now))
    await session.flush()


async def clear_failed_logins(session: AsyncSession, *, subject_kind: str, email: str, ip: str) -> None:
    await session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.subject_kind == subject_kind, LoginAttempt.email == email, LoginAttempt.ip == ip
        )
    )
