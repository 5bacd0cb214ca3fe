"""TOTP (RFC 6238) with pyotp: 30-second steps, one step of clock drift either way, no code accepted twice."""

from __future__ import annotations

import time

import pyotp
from pyotp.utils import strings_equal

ISSUER = "Namaskah Partners"
VALID_WINDOW = 1


def current_time() -> float:
    """The clock the verifier reads (tests replace it to step through time)."""
    return time.time()


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_timecode(secret: str, code: str, *, after: int | None) -> int | None:
    """The time step the code belongs to, if it is valid now and newer than `after` (the last one used)."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(current_time())
    for timecode in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if (after is None or timecode > after) and strings_equal(code, totp.generate_otp(timecode)):
            return timecode
    return None
