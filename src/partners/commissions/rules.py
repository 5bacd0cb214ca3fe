"""The commission engine's arithmetic: pure functions on integers, no database, property-tested.

Amounts are integer minor units, rates integer basis points (10000 bps = 100%). One rounding rule everywhere:
round half to even of the exact quotient, computed on integers (never floats).

- a level's share of a sale: round_half_even(amount * rate_bps / 10000);
- a refund (DESIGN.md "Money"): reversed(cumulative_refund) = round_half_even(commission * cumulative_refund /
  amount); one refund reverses reversed(new) - reversed(old), so a sequence of partial refunds that reaches
  the amount reverses exactly the commission, never more, and the reversed total only grows.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import datetime

BPS_SCALE = 10_000
DURATIONS = ("lifetime", "months", "purchases")


def round_half_even_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, exactly (integer arithmetic)."""
    if denominator <= 0:
        raise ValueError("the denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)  # 0 <= remainder < denominator
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def _check_amount(amount: int, name: str = "amount") -> None:
    if amount < 0:
        raise ValueError(f"{name} must not be negative")


def _check_rate(rate_bps: int) -> None:
    if not 0 <= rate_bps <= BPS_SCALE:
        raise ValueError("a rate is between 0 and 10000 basis points")


def level_share(amount: int, rate_bps: int) -> int:
    """One level's commission on a sale of `amount`."""
    _check_amount(amount)
    _check_rate(rate_bps)
    return round_half_even_div(amount * rate_bps, BPS_SCALE)


def split_commissions(amount: int, rates_bps: Sequence[int]) -> list[int]:
    """Each level's share of a sale, each exactly `level_share`.

    Rates adding up to more than 100% are refused. Rounding each share up by at most half a unit can still
    push the total past a tiny sale when the rates come close to 100% (3 levels at 30% of 5 → 2 + 2 + 2);
    that is refused too rather than bending the rounding rule. Real rate cards (≤ 57.5%) never hit it.
    """
    for rate in rates_bps:
        _check_rate(rate)
    if sum(rates_bps) > BPS_SCALE:
        raise ValueError("the level rates add up to more than 100%")
    shares = [level_share(amount, rate) for rate in rates_bps]
    if sum(shares) > amount:
        raise ValueError("the rounded shares would exceed the sale amount")
    return shares


def reversed_for(commission: int, amount: int, cumulative_refund: int) -> int:
    """How much of `commission` is reversed once `cumulative_refund` of the sale's `amount` was refunded."""
    _check_amount(commission, "commission")
    _check_amount(amount)
    if not 0 <= cumulative_refund <= amount:
        raise ValueError("the refunded total is between 0 and the sale amount")
    if cumulative_refund == amount:
        return commission
    return round_half_even_div(commission * cumulative_refund, amount)


def reversal_delta(commission: int, amount: int, old_refunded: int, new_refunded: int) -> int:
    """What a refund taking the refunded total from `old_refunded` to `new_refunded` reverses."""
    if new_refunded < old_refunded:
        raise ValueError("the refunded total cannot go down")
    return reversed_for(commission, amount, new_refunded) - reversed_for(commission, amount, old_refunded)


def bonus_rate(base_bps: int, ceiling_bps: int, steps: Sequence[Mapping[str, int]], monthly_revenue: int) -> int:
    """The level-1 rate after performance bonuses: the highest step whose revenue threshold is reached lifts
    the base; the result is never below the base nor above the ceiling."""
    rate = base_bps
    for step in steps:
        if monthly_revenue >= step["threshold"]:
            rate = max(rate, step["rate_bps"])
    return max(base_bps, min(rate, ceiling_bps))


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (the day clamped to the month's last day)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def within_duration(
    duration: str,
    value: int | None,
    first_purchase_at: datetime | None,
    purchase_index: int,
    at: datetime,
) -> bool:
    """Whether a customer's purchase still pays commission under a tier's duration rule.

    lifetime: always; months: while `at` is less than `value` calendar months after the customer's first
    purchase (no first purchase yet: this one is the first); purchases: the first `value` purchases
    (`purchase_index` counts from 1).
    """
    if duration == "lifetime":
        return True
    if value is None or value < 0:
        raise ValueError(f"the {duration!r} duration needs a value")
    if duration == "months":
        start = first_purchase_at if first_purchase_at is not None else at
        return at < add_months(start, value)
    if duration == "purchases":
        return 1 <= purchase_index <= value
    raise ValueError(f"unknown commission duration {duration!r}")
