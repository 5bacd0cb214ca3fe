"""Which tier a partner's performance earns: pure functions, no database.

A tier's `promotion_rule` ({"window_days", "min_revenue", "min_active_customers", "min_referrals"}, every key
optional) is met when every threshold it names is reached over its rolling window. The lowest-ranked tier is
the entry tier (always reachable). A tier other than the lowest with an empty rule is staff-assigned only
(white-label): never reached, and never left, automatically.

The chosen tier is the highest-ranked reachable tier whose rule is met: a promotion when that is above the
current tier, a demotion when the current tier's rule is no longer met. A tier that staff assigned by hand is
a floor: automatic evaluation may promote above it, never demote below it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

DEFAULT_WINDOW_DAYS = 90


@dataclass(frozen=True, slots=True)
class Metrics:
    """A partner's performance over a rolling window (revenue in the program's currency, minor units)."""

    revenue: int
    active_customers: int
    referrals: int


class TierLike(Protocol):
    @property
    def rank(self) -> int: ...

    @property
    def promotion_rule(self) -> dict[str, int]: ...


TierT = TypeVar("TierT", bound=TierLike)


def window_days(rule: Mapping[str, int]) -> int:
    return rule.get("window_days", DEFAULT_WINDOW_DAYS)


def rule_met(rule: Mapping[str, int], metrics: Metrics) -> bool:
    return (
        metrics.revenue >= rule.get("min_revenue", 0)
        and metrics.active_customers >= rule.get("min_active_customers", 0)
        and metrics.referrals >= rule.get("min_referrals", 0)
    )


def staff_only(tier: TierLike, lowest_rank: int) -> bool:
    return tier.rank != lowest_rank and not tier.promotion_rule


def choose_tier(
    tiers: Sequence[TierT],
    current: TierT,
    metrics_by_window: Mapping[int, Metrics],
    floor: TierT | None = None,
) -> TierT:
    """The tier the partner belongs in. `metrics_by_window` has the metrics for every rule's window."""
    lowest_rank = min(tier.rank for tier in tiers)
    if staff_only(current, lowest_rank):
        return current
    qualified = [
        tier
        for tier in tiers
        if tier.rank == lowest_rank
        or (
            not staff_only(tier, lowest_rank)
            and rule_met(tier.promotion_rule, metrics_by_window[window_days(tier.promotion_rule)])
        )
    ]
    best = max(qualified, key=lambda tier: tier.rank)
    if floor is not None and floor.rank > best.rank:
        return floor
    return best
