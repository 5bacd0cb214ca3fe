"""SEPA credit transfer: a pain.001 file (sepaxml) for finance to upload to the platform's bank.

EUR only. The debtor is the platform's account from the settings (PARTNERS_SEPA_DEBTOR_NAME / _IBAN / _BIC,
PARTNERS_SEPA_SCHEMA). Each transfer's end-to-end id is the payout id, so the bank's confirmation can be
matched back. The message id is derived from the batch id: a bank refuses a second file with the same
message id, so the same batch can't be paid twice by uploading its file again. Every payout in the file is
"processing" until the bank confirmation is uploaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sepaxml import SepaTransfer  # type: ignore[import-untyped]
from text_unidecode import unidecode  # type: ignore[import-untyped]

from partners.payouts.providers.base import (
    TARGET2_HOLIDAYS,
    BatchExecution,
    PayoutInstruction,
    ProviderError,
    business_day_on_or_after,
    check_each,
    file_results,
)
from partners.settings import Settings

# ISO 20022 amounts are at most 18 digits; EPC caps a SEPA credit transfer at 999,999,999.99 EUR.
MAX_AMOUNT_CENTS = 99_999_999_999
# The Latin character set every SEPA bank must accept (EPC guidance); anything else becomes a space.
_NOT_SEPA_CHARACTERS = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")


class SepaConfigurationError(ProviderError):
    """The platform's own debtor account in the settings is unusable: the job retries once it is fixed."""


@dataclass(frozen=True)
class CreditTransfer:
    payout_id: int
    name: str
    iban: str
    bic: str
    amount: int
    description: str


def sepa_text(text: str, limit: int) -> str:
    latin = _NOT_SEPA_CHARACTERS.sub(" ", unidecode(text))
    return " ".join(latin.split())[:limit]


def end_to_end_id(payout_id: int) -> str:
    return str(payout_id)


def message_id(batch_id: int) -> str:
    return f"NAMASKAH-PAYOUT-BATCH-{batch_id}"


def payment_information_id(batch_id: int, number: int) -> str:
    """The id of the batch's `number`th payment-information block (one per execution date): at most 35
    characters, like every pain.001 id."""
    return f"NAMASKAH-BATCH-{batch_id}-{number}"


_PAYMENT_INFORMATION_ID = re.compile(rb"<PmtInfId>[^<]*</PmtInfId>")


def _number_payment_informations(xml: bytes, batch_id: int) -> bytes:
    """sepaxml draws random payment-information ids at export; ours say which batch a bank statement line
    belongs to, and the same batch always gets the same file."""
    numbers = iter(range(1, 1_000_000))

    def replace(_match: re.Match[bytes]) -> bytes:
        return b"<PmtInfId>" + payment_information_id(batch_id, next(numbers)).encode() + b"</PmtInfId>"

    return _PAYMENT_INFORMATION_ID.sub(replace, xml)


def check_instruction(item: PayoutInstruction) -> CreditTransfer:
    """The credit transfer for one payout; ValueError says, readably, why it can't be paid by SEPA."""
    if item.currency.upper() != "EUR":
        raise ValueError(f"SEPA pays only EUR, not {item.currency}")
    if not 0 < item.amount <= MAX_AMOUNT_CENTS:
        raise ValueError("SEPA amount must be between 0.01 and 999999999.99 EUR")
    try:
        iban = IBAN(item.details.get("iban", ""))
    except SchwiftyException as error:
        raise ValueError(f"invalid IBAN: {error}") from None
    if not iban.in_sepa_zone:
        raise ValueError(f"IBAN country {iban.country_code} is not in the SEPA zone")
    bic = ""
    if item.details.get("bic"):
        try:
            bic = BIC(item.details["bic"]).compact
        except SchwiftyException as error:
            raise ValueError(f"invalid BIC: {error}") from None
    name = sepa_text(item.details.get("holder", "").strip() or item.partner_name, 70)
    if not name:
        raise ValueError("the account holder's name is missing")
    return CreditTransfer(
        payout_id=item.payout_id,
        name=name,
        iban=iban.compact,
        bic=bic,
        amount=item.amount,
        description=f"Partner payout {item.payout_id}",
    )


def debtor_config(settings: Settings) -> dict[str, Any]:
    try:
        iban = IBAN(settings.sepa_debtor_iban).compact
        bic = BIC(settings.sepa_debtor_bic).compact if settings.sepa_debtor_bic else ""
    except SchwiftyException as error:
        raise SepaConfigurationError(f"PARTNERS_SEPA_DEBTOR_IBAN / _BIC: {error}") from None
    config: dict[str, Any] = {
        "name": sepa_text(settings.sepa_debtor_name, 70),
        "IBAN": iban,
        "batch": True,
        "currency": "EUR",
    }
    if bic:
        config["BIC"] = bic
    return config


def render_pain001(
    settings: Settings, batch_id: int, transfers: Sequence[CreditTransfer], execution_date: date
) -> bytes:
    """The pain.001 document; sepaxml validates it against the schema before returning it."""
    document = SepaTransfer(debtor_config(settings), schema=settings.sepa_schema)
    # sepaxml draws a random message id; set ours (the header node exists from construction on).
    document._xml.find("CstmrCdtTrfInitn/GrpHdr/MsgId").text = message_id(batch_id)
    for transfer in transfers:
        payment: dict[str, Any] = {
            "name": transfer.name,
            "IBAN": transfer.iban,
            "amount": transfer.amount,
            "execution_date": execution_date,
            "description": transfer.description,
            "endtoend_id": end_to_end_id(transfer.payout_id),
        }
        if transfer.bic:
            payment["BIC"] = transfer.bic
        document.add_payment(payment)
    xml: bytes = document.export(validate=True)
    return _number_payment_informations(xml, batch_id)


class SepaProvider:
    method = "sepa"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))

    async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution:
        transfers, failed = check_each(instructions, check_instruction)
        if not transfers:
            return BatchExecution(results=list(failed.values()))
        execution_date = business_day_on_or_after(self.clock().date(), TARGET2_HOLIDAYS)
        xml = render_pain001(self.settings, batch_id, transfers, execution_date)
        references = {transfer.payout_id: end_to_end_id(transfer.payout_id) for transfer in transfers}
        return BatchExecution(
            results=file_results(instructions, failed, references),
            file_name=f"sepa-batch-{batch_id}.xml",
            file_bytes=xml,
            media_type="application/xml",
            extra={"message_id": message_id(batch_id)},
        )
