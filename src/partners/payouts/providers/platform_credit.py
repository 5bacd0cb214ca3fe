"""Platform credit: the partner is paid into their Namaskah wallet.

The money never leaves the platform, so every payout is "paid" at once; the payouts core posts the hold and
queues the host callback job (idempotent by payout id) that credits the wallet.
"""

from __future__ import annotations

from collections.abc import Sequence

from partners.payouts.providers.base import BatchExecution, PayoutInstruction, ProviderResult
from partners.settings import Settings


def credit_reference(payout_id: int) -> str:
    return f"credit-{payout_id}"


class PlatformCreditProvider:
    method = "platform_credit"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution:
        results = [
            ProviderResult(payout_id=item.payout_id, status="paid", reference=credit_reference(item.payout_id))
            for item in instructions
        ]
        return BatchExecution(results=results)
