"""Which ledger accounts hold a partner's earnings.

- `partner:<id>` / `earnings_pending`   — commissions inside their hold period (credited at the purchase);
- `partner:<id>` / `earnings_available` — approved commissions, payable; payout holds reserve from
  here. It may go negative only through clawbacks (a refund after approval or payout, posted with
  allow_overdraft), and then future approvals pay the debt back first;
- `platform` / `commission_expense`     — the other side of every commission; kept as a sum (no hot row).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from partners.ledger import service as ledger
from partners.ledger.models import LedgerAccount

PLATFORM_OWNER = "platform"
EARNINGS_PENDING = "earnings_pending"
EARNINGS_AVAILABLE = "earnings_available"
COMMISSION_EXPENSE = "commission_expense"


PARTNER_OWNER_PREFIX = "partner:"


def partner_owner(partner_id: int) -> str:
    return f"{PARTNER_OWNER_PREFIX}{partner_id}"


async def earnings_pending_account(session: AsyncSession, partner_id: int, currency: str) -> LedgerAccount:
    return await ledger.open_account(session, owner=partner_owner(partner_id), kind=EARNINGS_PENDING, currency=currency)


async def commission_accounts(
    session: AsyncSession, partner_ids: list[int], currency: str
) -> tuple[LedgerAccount, dict[int, LedgerAccount]]:
    """commission_expense and the partners' earnings_pending accounts: one query for those that exist, the
    others created."""
    currency = currency.upper()
    expense_key = (PLATFORM_OWNER, COMMISSION_EXPENSE, currency)
    keys = {partner_id: (partner_owner(partner_id), EARNINGS_PENDING, currency) for partner_id in partner_ids}
    found = await ledger.find_accounts(session, [expense_key, *keys.values()])
    expense = found.get(expense_key) or await commission_expense_account(session, currency)
    pending = {
        partner_id: found.get(key) or await earnings_pending_account(session, partner_id, currency)
        for partner_id, key in keys.items()
    }
    return expense, pending


async def earnings_available_account(session: AsyncSession, partner_id: int, currency: str) -> LedgerAccount:
    return await ledger.open_account(
        session, owner=partner_owner(partner_id), kind=EARNINGS_AVAILABLE, currency=currency
    )


async def commission_expense_account(session: AsyncSession, currency: str) -> LedgerAccount:
    return await ledger.open_account(
        session,
        owner=PLATFORM_OWNER,
        kind=COMMISSION_EXPENSE,
        currency=currency,
        may_go_negative=True,
        kept_as_sum=True,
    )
