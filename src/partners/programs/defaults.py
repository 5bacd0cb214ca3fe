"""The default tiers from the plan. Level-1 base rates come from AFFILIATE_COMMISSION_RATES.

| tier        | level 1 (base → ceiling) | level 2 | level 3 | hold | promotion (90-day window)          |
|-------------|--------------------------|---------|---------|------|------------------------------------|
| Starter     | 5% → 10%                 | 2%      | 1%      | 30 d | entry tier                         |
| Professional| 15% → 20%                | 3%      | 1.5%    | 30 d | ≥ 5,000.00 referred, ≥ 10 customers |
| Enterprise  | 25% → 30%                | 4%      | 2%      | 14 d | ≥ 50,000.00 referred, ≥ 50 customers|
| White-label | 40% → 50% revenue share  | 5%      | 2.5%    | 14 d | assigned by staff only             |
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from partners.settings import Settings

BPS_PER_UNIT = Decimal(10_000)


def rate_to_bps(rate: Decimal) -> int:
    """0.05 → 500 basis points (round half even, the one rounding rule)."""
    return int((rate * BPS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def default_tiers(settings: Settings) -> list[dict[str, Any]]:
    rates = settings.affiliate_commission_rates
    starter = rate_to_bps(rates.get("starter", Decimal("0.05")))
    pro = rate_to_bps(rates.get("pro", Decimal("0.15")))
    enterprise = rate_to_bps(rates.get("enterprise", Decimal("0.25")))
    whitelabel = rate_to_bps(rates.get("whitelabel", Decimal("0.40")))
    return [
        {
            "key": "starter",
            "name": "Starter",
            "rank": 1,
            "base_rate_bps": starter,
            "ceiling_rate_bps": max(starter, 1000),
            "level2_rate_bps": 200,
            "level3_rate_bps": 100,
            "bonus_steps": [
                {"threshold": 100_000, "rate_bps": 750},
                {"threshold": 500_000, "rate_bps": 1000},
            ],
            "hold_days": 30,
            "can_recruit": True,
            "features": {
                "support": "standard",
                "analytics": "basic",
                "custom_rates": False,
                "dedicated_manager": False,
                "sla": None,
            },
            "promotion_rule": {},
        },
        {
            "key": "pro",
            "name": "Professional",
            "rank": 2,
            "base_rate_bps": pro,
            "ceiling_rate_bps": max(pro, 2000),
            "level2_rate_bps": 300,
            "level3_rate_bps": 150,
            "bonus_steps": [
                {"threshold": 500_000, "rate_bps": 1750},
                {"threshold": 1_500_000, "rate_bps": 2000},
            ],
            "hold_days": 30,
            "can_recruit": True,
            "features": {
                "support": "priority",
                "analytics": "advanced",
                "custom_rates": True,
                "dedicated_manager": False,
                "sla": None,
            },
            "promotion_rule": {"window_days": 90, "min_revenue": 500_000, "min_active_customers": 10},
        },
        {
            "key": "enterprise",
            "name": "Enterprise",
            "rank": 3,
            "base_rate_bps": enterprise,
            "ceiling_rate_bps": max(enterprise, 3000),
            "level2_rate_bps": 400,
            "level3_rate_bps": 200,
            "bonus_steps": [
                {"threshold": 5_000_000, "rate_bps": 2750},
                {"threshold": 10_000_000, "rate_bps": 3000},
            ],
            "hold_days": 14,
            "can_recruit": True,
            "features": {
                "support": "dedicated",
                "analytics": "advanced",
                "custom_rates": True,
                "dedicated_manager": True,
                "sla": "99.9% uptime, 4 h response",
            },
            "promotion_rule": {"window_days": 90, "min_revenue": 5_000_000, "min_active_customers": 50},
        },
        {
            "key": "whitelabel",
            "name": "White-label",
            "rank": 4,
            "base_rate_bps": whitelabel,
            "ceiling_rate_bps": max(whitelabel, 5000),
            "level2_rate_bps": 500,
            "level3_rate_bps": 250,
            "bonus_steps": [
                {"threshold": 10_000_000, "rate_bps": 4500},
                {"threshold": 25_000_000, "rate_bps": 5000},
            ],
            "hold_days": 14,
            "can_recruit": True,
            "features": {
                "support": "dedicated",
                "analytics": "full",
                "custom_rates": True,
                "dedicated_manager": True,
                "sla": "99.95% uptime, 1 h response",
                "branding": True,
                "custom_domains": True,
            },
            "promotion_rule": {},
        },
    ]
