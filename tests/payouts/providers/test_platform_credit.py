from __future__ import annotations

from partners.payouts.providers import get_provider
from partners.payouts.providers.platform_credit import PlatformCreditProvider

from .support import instruction, provider_settings


async def test_platform_credit_is_paid_at_once_with_a_reference_per_payout() -> None:
    provider = PlatformCreditProvider(provider_settings())
    items = [
        instruction(7, 5000, "USD", "platform_credit", {"account_reference": "user-7"}),
        instruction(8, 1, "EUR", "platform_credit", {"account_reference": ""}),
    ]

    execution = await provider.execute(3, items)

    assert [(r.payout_id, r.status, r.reference) for r in execution.results] == [
        (7, "paid", "credit-7"),
        (8, "paid", "credit-8"),
    ]
    assert execution.file_bytes is None


def test_registry_builds_each_rail() -> None:
    settings = provider_settings()
    for method in ("platform_credit", "paypal", "sepa", "ach", "wise", "crypto"):
        assert get_provider(method, settings).method == method
