"""Pure checks: the permission map and the crypto helpers (no database)."""

from __future__ import annotations

import pytest

from partners.identity.deps import require_api_key, require_staff
from partners.identity.roles import (
    MANAGE_OWNERS,
    PERMISSIONS,
    READ_PERMISSIONS,
    ROLE_PERMISSIONS,
    WRITE_PERMISSIONS,
    Role,
    has_permission,
)
from partners.kit.crypto import DecryptionError, decrypt_text, encrypt_text, keyed_hash
from partners.settings import Settings


def test_viewer_is_read_only() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == READ_PERMISSIONS
    assert not ROLE_PERMISSIONS[Role.VIEWER] & WRITE_PERMISSIONS


def test_finance_handles_money_and_support_handles_partners() -> None:
    assert {"payouts:approve", "commissions:write", "ledger:read"} <= ROLE_PERMISSIONS[Role.FINANCE]
    assert not has_permission(Role.FINANCE, "partners:write")
    assert not has_permission(Role.FINANCE, "staff:manage")
    assert {"partners:write", "disputes:write"} <= ROLE_PERMISSIONS[Role.SUPPORT]
    assert not has_permission(Role.SUPPORT, "payouts:approve")
    assert not has_permission(Role.SUPPORT, "apikeys:manage")


def test_admin_has_everything_but_owner_management() -> None:
    assert PERMISSIONS - ROLE_PERMISSIONS[Role.ADMIN] == {MANAGE_OWNERS}
    assert ROLE_PERMISSIONS[Role.OWNER] == PERMISSIONS


def test_dependencies_refuse_unknown_permissions_and_scopes() -> None:
    with pytest.raises(ValueError, match="partner:read"):
        require_staff("partner:read")
    with pytest.raises(ValueError, match="events:delete"):
        require_api_key("events:delete")


def _settings(secret: str) -> Settings:
    return Settings(_env_file=None, SECRET_KEY=secret)


def test_encrypted_text_round_trips_and_hides_the_plaintext() -> None:
    settings = _settings("first-secret-key-0123456789")
    first = encrypt_text(settings, "IBAN DE89 3704 0044 0532 0130 00")
    second = encrypt_text(settings, "IBAN DE89 3704 0044 0532 0130 00")
    assert "DE89" not in first
    assert first != second  # random IV
    assert decrypt_text(settings, first) == "IBAN DE89 3704 0044 0532 0130 00"


def test_another_secret_key_cannot_decrypt() -> None:
    ciphertext = encrypt_text(_settings("first-secret-key-0123456789"), "secret")
    with pytest.raises(DecryptionError):
        decrypt_text(_settings("second-secret-key-0123456789"), ciphertext)
    with pytest.raises(DecryptionError):
        decrypt_text(_settings("first-secret-key-0123456789"), ciphertext[:-4] + "AAAA")


def test_keyed_hashes_depend_on_key_and_purpose() -> None:
    settings = _settings("first-secret-key-0123456789")
    digest = keyed_hash(settings, "token", purpose="session-token")
    assert digest == keyed_hash(settings, "token", purpose="session-token")
    assert len(digest) == 64
    assert digest != keyed_hash(settings, "token", purpose="api-key")
    assert digest != keyed_hash(_settings("second-secret-key-0123456789"), "token", purpose="session-token")
