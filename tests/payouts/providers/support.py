"""Builders shared by the provider tests."""

from __future__ import annotations

from partners.payouts.providers.base import PayoutInstruction
from partners.settings import Settings


def instruction(
    payout_id: int,
    amount: int,
    currency: str,
    method: str,
    details: dict[str, str],
    partner_name: str = "Asha Rao",
) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=payout_id,
        partner_id=1000 + payout_id,
        partner_name=partner_name,
        partner_email=f"partner{payout_id}@example.com",
        amount=amount,
        currency=currency,
        method=method,
        details=details,
    )


def provider_settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]
