"""Payout details: validation per method (schwifty, python-stdnum, base58/bech32/keccak) and masking.

`validate_details` returns the normalised details with every key of `DETAIL_KEYS[method]` (optional ones "");
it raises Unprocessable naming the field as `details.<key>`.
"""

from __future__ import annotations

import re

import base58
import bech32
from Crypto.Hash import keccak
from email_validator import EmailNotValidError, validate_email
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from stdnum.us import rtn

from partners.kit.errors import Unprocessable
from partners.payouts.providers.base import DETAIL_KEYS, PAYOUT_METHODS

# A rail pays in one currency; methods not listed here take any currency.
METHOD_CURRENCIES: dict[str, str] = {"sepa": "EUR", "ach": "USD"}
CRYPTO_NETWORKS = ("bitcoin", "ethereum")
ACH_ACCOUNT_TYPES = ("checking", "savings")
_DIGITS = re.compile(r"^[0-9]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ETH_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BITCOIN_BASE58_VERSIONS = (0x00, 0x05)  # P2PKH, P2SH on mainnet


def _invalid(key: str, message: str) -> Unprocessable:
    return Unprocessable(message, field=f"details.{key}")


def _text(raw: dict[str, str], key: str, *, required: bool = True, max_length: int = 140) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise _invalid(key, f"{key} must be text")
    value = " ".join(value.split())
    if required and not value:
        raise _invalid(key, f"{key} is required")
    if len(value) > max_length:
        raise _invalid(key, f"{key} is at most {max_length} characters")
    return value


def _email(raw: dict[str, str], key: str, *, required: bool = True) -> str:
    value = _text(raw, key, required=required, max_length=254)
    if not value:
        return ""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise _invalid(key, f"{key} is not a valid email address: {error}") from None


def _paypal(raw: dict[str, str]) -> dict[str, str]:
    return {"email": _email(raw, "email")}


def _sepa(raw: dict[str, str]) -> dict[str, str]:
    try:
        iban = IBAN(_text(raw, "iban", max_length=42))
    except SchwiftyException as error:
        raise _invalid("iban", f"invalid IBAN: {error}") from None
    if not iban.in_sepa_zone:
        raise _invalid("iban", f"{iban.country_code} IBANs are outside the SEPA zone")
    bic_text = _text(raw, "bic", required=False, max_length=11)
    try:
        bic = BIC(bic_text) if bic_text else iban.bic
    except SchwiftyException as error:
        raise _invalid("bic", f"invalid BIC: {error}") from None
    if bic is None:
        raise _invalid("bic", "a BIC is required for this IBAN")
    if bic.country_code != iban.country_code and not (
        iban.country_code in ("MC", "SM", "VA") or bic.country_code in ("MC", "SM", "VA")
    ):
        raise _invalid("bic", f"the BIC is from {bic.country_code}, the IBAN from {iban.country_code}")
    return {"iban": iban.compact, "bic": str(bic.compact), "holder": _text(raw, "holder", max_length=70)}


def _ach(raw: dict[str, str]) -> dict[str, str]:
    routing = _text(raw, "routing_number", max_length=9)
    if not rtn.is_valid(routing):
        raise _invalid("routing_number", "invalid ABA routing number (9 digits with a valid checksum)")
    account = _text(raw, "account_number", max_length=17).replace(" ", "")
    if not _DIGITS.match(account) or not 4 <= len(account) <= 17:
        raise _invalid("account_number", "an account number is 4 to 17 digits")
    account_type = _text(raw, "account_type", required=False, max_length=8).lower() or "checking"
    if account_type not in ACH_ACCOUNT_TYPES:
        raise _invalid("account_type", "account_type is checking or savings")
    return {
        "routing_number": rtn.compact(routing),
        "account_number": account,
        "account_type": account_type,
        "holder": _text(raw, "holder", max_length=22),
    }


def _wise(raw: dict[str, str]) -> dict[str, str]:
    country = _text(raw, "country", max_length=2).upper()
    if not _COUNTRY.match(country):
        raise _invalid("country", "country is an ISO 3166 two-letter code")
    return {
        "holder": _text(raw, "holder", max_length=140),
        "bank_name": _text(raw, "bank_name", max_length=140),
        "account_number": _text(raw, "account_number", max_length=64),
        "bank_code": _text(raw, "bank_code", required=False, max_length=64),
        "country": country,
        "email": _email(raw, "email", required=False),
    }


def _valid_bitcoin_address(address: str) -> bool:
    if address.lower().startswith("bc1"):
        version, program = bech32.decode("bc", address)
        return version is not None and program is not None
    try:
        decoded = base58.b58decode_check(address)
    except ValueError:
        return False
    return len(decoded) == 21 and decoded[0] in _BITCOIN_BASE58_VERSIONS


def _eip55(address: str) -> str:
    digest = keccak.new(digest_bits=256, data=address[2:].lower().encode()).hexdigest()
    hex_part = address[2:].lower()
    return "0x" + "".join(
        char.upper() if char.isalpha() and int(digest[i], 16) >= 8 else char for i, char in enumerate(hex_part)
    )


def _valid_ethereum_address(address: str) -> bool:
    if not _ETH_ADDRESS.match(address):
        return False
    body = address[2:]
    if body == body.lower() or body == body.upper():
        return True  # no checksum to check
    return _eip55(address) == address


def _crypto(raw: dict[str, str]) -> dict[str, str]:
    network = _text(raw, "network", max_length=16).lower()
    if network not in CRYPTO_NETWORKS:
        raise _invalid("network", f"network is one of {', '.join(CRYPTO_NETWORKS)}")
    address = _text(raw, "address", max_length=100)
    valid = _valid_bitcoin_address(address) if network == "bitcoin" else _valid_ethereum_address(address)
    if not valid:
        raise _invalid("address", f"not a valid {network} address")
    return {"network": network, "address": address}


_VALIDATORS = {
    "paypal": _paypal,
    "sepa": _sepa,
    "ach": _ach,
    "wise": _wise,
    "crypto": _crypto,
}


def validate_details(method: str, raw: dict[str, str], *, currency: str) -> dict[str, str]:
    """Normalised details for a method that the partner fills in (not platform_credit)."""
    if method not in PAYOUT_METHODS or method == "platform_credit":
        raise Unprocessable(f"unknown payout method {method!r}", field="method")
    required_currency = METHOD_CURRENCIES.get(method)
    if required_currency is not None and currency.upper() != required_currency:
        raise Unprocessable(f"{method} pays in {required_currency} only", field="currency")
    unknown = sorted(set(raw) - set(DETAIL_KEYS[method]))
    if unknown:
        raise _invalid(unknown[0], f"{unknown[0]} is not a detail of {method}")
    return _VALIDATORS[method](raw)


def _mask_tail(value: str, visible: int = 4) -> str:
    if len(value) <= visible:
        return "*" * len(value)
    return "*" * (len(value) - visible) + value[-visible:]


def _mask_email(value: str) -> str:
    if "@" not in value:
        return _mask_tail(value)
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_details(method: str, details: dict[str, str]) -> dict[str, str]:
    """What the partner and staff see: enough to recognise the account, not enough to use it."""
    masked: dict[str, str] = {}
    for key, value in details.items():
        if not value:
            masked[key] = value
        elif key == "email":
            masked[key] = _mask_email(value)
        elif key == "iban":
            masked[key] = value[:4] + "*" * (len(value) - 8) + value[-4:]
        elif key in ("account_number", "address"):
            masked[key] = _mask_tail(value) if key == "account_number" else f"{value[:6]}...{value[-4:]}"
        else:
            masked[key] = value
    return masked
