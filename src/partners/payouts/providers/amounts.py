"""Exact conversions between integer minor units and decimal strings ("12.34"), by string operations only.

Payout files and APIs want decimal strings; the ledger keeps integers. No float ever touches an amount.
"""

from __future__ import annotations

import re

_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d*))?")


def minor_to_decimal_str(amount: int, exponent: int) -> str:
    """1234, 2 → "12.34"; 5, 2 → "0.05"; 700, 0 → "700"; -5, 2 → "-0.05"."""
    if exponent < 0:
        raise ValueError("exponent must not be negative")
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount)).rjust(exponent + 1, "0")
    if exponent == 0:
        return sign + digits
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def decimal_str_to_minor(text: str, exponent: int) -> int:
    """ "12.34", 2 → 1234; "12.3", 2 → 1230; "12", 2 → 1200. More decimals than `exponent` (unless they are
    trailing zeros) raise ValueError: the amount would not be exact."""
    match = _DECIMAL.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a decimal amount: {text!r}")
    sign, whole, fraction = match.group(1), match.group(2), (match.group(3) or "")
    significant = fraction.rstrip("0")
    if len(significant) > exponent:
        raise ValueError(f"{text!r} has more than {exponent} decimals")
    value = int(whole + significant.ljust(exponent, "0"))
    return -value if sign else value
