"""Argon2id password hashing (pwdlib), run off the event loop: one hash costs tens of milliseconds."""

from __future__ import annotations

import os
from functools import lru_cache

from anyio import to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from partners.kit.errors import Unprocessable

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

# Argon2id cost, tunable per deployment. The defaults are argon2-cffi's (64 MiB, 3 passes); the test
# suite lowers them so thousands of hashes stay quick (still Argon2id).
_password_hash = PasswordHash(
    (
        Argon2Hasher(
            time_cost=int(os.environ.get("PARTNERS_ARGON2_TIME_COST", "3")),
            memory_cost=int(os.environ.get("PARTNERS_ARGON2_MEMORY_KIB", "65536")),
        ),
    )
)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both answers take as long."""
    return _password_hash.hash("not-a-real-password")


def validate_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Unprocessable(
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long",
            field="password",
        )


async def hash_password(password: str) -> str:
    return await to_thread.run_sync(_password_hash.hash, password)


async def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one used weaker parameters). A None hash never matches."""
    if password_hash is None:
        await to_thread.run_sync(_password_hash.verify, password, _dummy_hash())
        return False, None
    return await to_thread.run_sync(_password_hash.verify_and_update, password, password_hash)
