"""Secrets at rest (Fernet) and keyed hashes of high-entropy tokens (HMAC-SHA256).

Both derive their own key from `settings.secret_key` with HKDF, one key per purpose, so the Fernet key is
never the HMAC key. Changing SECRET_KEY makes stored ciphertexts unreadable and every API key and session
token invalid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from partners.settings import Settings

_FERNET_PURPOSE = "partners:fernet:v1"


class DecryptionError(Exception):
    """The ciphertext was not made with this SECRET_KEY, or it was altered."""


@lru_cache(maxsize=32)
def derive_key(secret_key: str, purpose: str) -> bytes:
    """32 bytes for one purpose, derived from the application secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret_key.encode())


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret_key, _FERNET_PURPOSE)))


def encrypt_text(settings: Settings, plaintext: str) -> str:
    return _fernet(settings.secret_key).encrypt(plaintext.encode()).decode("ascii")


def decrypt_text(settings: Settings, ciphertext: str) -> str:
    try:
        return _fernet(settings.secret_key).decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as error:
        raise DecryptionError("cannot decrypt: wrong SECRET_KEY or altered ciphertext") from error


def keyed_hash(settings: Settings, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 hex digest: the stored form of a random token (API key, session token).

    Right for high-entropy secrets only; passwords go through argon2 instead.
    """
    key = derive_key(settings.secret_key, f"partners:hmac:{purpose}")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
