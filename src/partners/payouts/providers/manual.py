"""Manual rails (Wise-style bank details, crypto, anything without an API here): a CSV for finance.

One row per payout; finance pays by hand and later uploads the bank confirmation. Every payout stays
"processing" until then.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from partners.payouts.providers.amounts import minor_to_decimal_str
from partners.payouts.providers.base import (
    DETAIL_KEYS,
    BatchExecution,
    PayoutInstruction,
    ProviderResult,
    currency_exponent,
)
from partners.settings import Settings

BASE_COLUMNS = (
    "payout_id",
    "partner_id",
    "partner_name",
    "partner_email",
    "method",
    "amount",
    "currency",
    "amount_minor",
)
# A cell starting with one of these is a formula to Excel / LibreOffice (CSV injection): quote it.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def detail_keys(method: str, instructions: Sequence[PayoutInstruction]) -> list[str]:
    known = list(DETAIL_KEYS.get(method, ()))
    extra = sorted({key for item in instructions for key in item.details} - set(known))
    return known + extra


def payout_row(item: PayoutInstruction, keys: Sequence[str]) -> list[str]:
    amount = minor_to_decimal_str(item.amount, currency_exponent(item.currency))
    row = [
        str(item.payout_id),
        str(item.partner_id),
        safe_cell(item.partner_name),
        safe_cell(item.partner_email),
        item.method,
        amount,
        item.currency.upper(),
        str(item.amount),
    ]
    return row + [safe_cell(item.details.get(key, "")) for key in keys]


def render_csv(method: str, instructions: Sequence[PayoutInstruction]) -> bytes:
    keys = detail_keys(method, instructions)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*BASE_COLUMNS, *(f"details_{key}" for key in keys)])
    for item in instructions:
        writer.writerow(payout_row(item, keys))
    # With a BOM, so that Excel reads the names as UTF-8.
    return buffer.getvalue().encode("utf-8-sig")


class ManualProvider:
    def __init__(self, settings: Settings, method: str) -> None:
        self.settings = settings
        self.method = method

    async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution:
        if not instructions:
            return BatchExecution(results=[])
        results = [ProviderResult(payout_id=item.payout_id, status="processing") for item in instructions]
        return BatchExecution(
            results=results,
            file_name=f"{self.method}-batch-{batch_id}.csv",
            file_bytes=render_csv(self.method, instructions),
            media_type="text/csv",
        )
