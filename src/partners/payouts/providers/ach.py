"""US ACH credits: a NACHA file for finance to upload to the platform's bank (the ODFI).

No maintained Python library fits (the PyPI ones are unmaintained since 2014-2019, or a 0.x without type
information), so this is a small writer of the published layout: 94-character records, one file header (1),
one PPD or CCD batch (5), one entry detail per payout (6, no addenda), the batch control (8), the file
control (9), and 9-filled records up to a multiple of 10 lines. The tests parse the output back field by
field at the published positions.

USD only. Routing numbers are checked with python-stdnum (ABA checksum). Each entry's individual id is the
payout id and its trace number is the result's reference. Every payout in the file is "processing" until the
bank confirmation (or a return) is uploaded. By default the file is not balanced (most ODFIs add the offset
themselves); with PARTNERS_ACH_OFFSET_ACCOUNT set, the batch ends with an offset entry debiting that account
at the ODFI for the total (service class 200, mixed), so debits equal credits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from stdnum.exceptions import ValidationError as NumberError
from stdnum.us import rtn
from text_unidecode import unidecode  # type: ignore[import-untyped]

from partners.payouts.providers.base import (
    FEDERAL_RESERVE_HOLIDAYS,
    BatchExecution,
    PayoutInstruction,
    ProviderError,
    business_day_on_or_after,
    check_each,
    file_results,
)
from partners.settings import Settings

RECORD_LENGTH = 94
BLOCKING_FACTOR = 10
SERVICE_CLASS_CREDITS_ONLY = "220"
SERVICE_CLASS_MIXED = "200"
TRANSACTION_CODES = {"checking": 22, "savings": 32}  # automated deposit (credit)
DEBIT_CODES = {"checking": 27, "savings": 37}  # automated payment (debit): the offset entry
OFFSET_ID = "OFFSET"
MAX_ENTRY_AMOUNT_CENTS = 99_999_999_99  # the entry amount field has 10 digits
ENTRY_DESCRIPTION = "PAYOUT"
_ACCOUNT_NUMBER = re.compile(r"\d{4,17}")
_FILE_ID_MODIFIERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class AchConfigurationError(ProviderError):
    """The platform's own ACH origination settings are unusable: the job retries once they are fixed."""


@dataclass(frozen=True)
class Originator:
    """The platform's side of the file, from the PARTNERS_ACH_* settings."""

    immediate_destination: str  # the ODFI's 9-digit routing number (where the file goes)
    immediate_destination_name: str
    immediate_origin: str  # 10 characters agreed with the bank (often "1" + EIN)
    company_name: str
    company_id: str
    originating_dfi: str  # first 8 digits of the ODFI routing number
    sec_code: str
    offset_account: str = ""  # the platform's account at the ODFI, debited by the offset entry; "" for none
    offset_account_type: str = "checking"


@dataclass(frozen=True)
class AchEntry:
    payout_id: int  # 0 for the offset entry
    transaction_code: int
    routing_number: str
    account_number: str
    amount: int
    name: str

    @property
    def individual_id(self) -> str:
        return str(self.payout_id) if self.payout_id else OFFSET_ID

    @property
    def is_debit(self) -> bool:
        return self.transaction_code in DEBIT_CODES.values()


@dataclass(frozen=True)
class NachaFile:
    text: str
    trace_numbers: dict[int, str]  # payout id -> trace number


def ascii_upper(text: str) -> str:
    """Transliterated to printable ASCII ("Jürgen Straße" → "JURGEN STRASSE"), upper case."""
    return "".join(char if " " <= char <= "~" else " " for char in unidecode(text)).upper()


def alpha(value: str, width: int) -> str:
    """Alphanumeric field: upper-case ASCII, left-justified, space-filled, cut to `width`."""
    return ascii_upper(value)[:width].ljust(width)


def numeric(value: int, width: int) -> str:
    """Numeric field: right-justified, zero-filled; a value that doesn't fit is an error, never cut."""
    text = str(value)
    if value < 0 or len(text) > width:
        raise ValueError(f"{value} does not fit a {width}-digit field")
    return text.rjust(width, "0")


def originator_from_settings(settings: Settings) -> Originator:
    try:
        destination = rtn.validate(settings.ach_immediate_destination)
    except NumberError:
        raise AchConfigurationError("PARTNERS_ACH_IMMEDIATE_DESTINATION is not a valid routing number") from None
    dfi = settings.ach_originating_dfi.strip()
    if not re.fullmatch(r"\d{8}", dfi):
        raise AchConfigurationError("PARTNERS_ACH_ORIGINATING_DFI must be the routing number's first 8 digits")
    origin = settings.ach_immediate_origin.strip()
    if not re.fullmatch(r"[0-9A-Za-z]{9,10}", origin):
        raise AchConfigurationError("PARTNERS_ACH_IMMEDIATE_ORIGIN must be 9 or 10 characters")
    offset_account = re.sub(r"[\s-]", "", settings.ach_offset_account)
    if offset_account and not _ACCOUNT_NUMBER.fullmatch(offset_account):
        raise AchConfigurationError("PARTNERS_ACH_OFFSET_ACCOUNT must have 4 to 17 digits")
    return Originator(
        immediate_destination=destination,
        immediate_destination_name=settings.ach_immediate_destination_name,
        immediate_origin=origin,
        company_name=settings.ach_company_name,
        company_id=settings.ach_company_id.strip(),
        originating_dfi=dfi,
        sec_code=settings.ach_sec_code,
        offset_account=offset_account,
        offset_account_type=settings.ach_offset_account_type,
    )


def check_instruction(item: PayoutInstruction) -> AchEntry:
    """The entry for one payout; ValueError says, readably, why it can't be paid by ACH."""
    if item.currency.upper() != "USD":
        raise ValueError(f"ACH pays only USD, not {item.currency}")
    if not 0 < item.amount <= MAX_ENTRY_AMOUNT_CENTS:
        raise ValueError("ACH amount must be between 0.01 and 99999999.99 USD")
    try:
        routing_number = rtn.validate(item.details.get("routing_number", ""))
    except NumberError:
        raise ValueError("invalid ABA routing number") from None
    account_number = re.sub(r"[\s-]", "", item.details.get("account_number", ""))
    if not _ACCOUNT_NUMBER.fullmatch(account_number):
        raise ValueError("the account number must have 4 to 17 digits")
    account_type = item.details.get("account_type") or "checking"
    if account_type not in TRANSACTION_CODES:
        raise ValueError("the account type must be checking or savings")
    name = " ".join(ascii_upper(item.details.get("holder", "").strip() or item.partner_name).split())
    if not name:
        raise ValueError("the account holder's name is missing")
    return AchEntry(
        payout_id=item.payout_id,
        transaction_code=TRANSACTION_CODES[account_type],
        routing_number=routing_number,
        account_number=account_number,
        amount=item.amount,
        name=name,
    )


def next_business_day(day: date) -> date:
    """The effective entry date: the next banking day of the Federal Reserve (no weekend, no FRB holiday)."""
    return business_day_on_or_after(day + timedelta(days=1), FEDERAL_RESERVE_HOLIDAYS)


def file_id_modifier(batch_id: int) -> str:
    """A-Z then 0-9: distinguishes files sent to the same bank on the same day."""
    return _FILE_ID_MODIFIERS[(batch_id - 1) % len(_FILE_ID_MODIFIERS)]


def file_header(origin: Originator, created: datetime, modifier: str, reference: str) -> str:
    return (
        "1"
        + "01"  # priority code
        + " " + origin.immediate_destination
        + origin.immediate_origin.rjust(10)
        + created.strftime("%y%m%d%H%M")
        + modifier
        + "094"  # record size
        + "10"  # blocking factor
        + "1"  # format code
        + alpha(origin.immediate_destination_name, 23)
        + alpha(origin.company_name, 23)
        + alpha(reference, 8)
    )  # fmt: skip


def service_class(entries: Sequence[AchEntry]) -> str:
    return SERVICE_CLASS_MIXED if any(entry.is_debit for entry in entries) else SERVICE_CLASS_CREDITS_ONLY


def totals(entries: Sequence[AchEntry]) -> tuple[int, int]:
    """(total debits, total credits) in cents."""
    debits = sum(entry.amount for entry in entries if entry.is_debit)
    return debits, sum(entry.amount for entry in entries) - debits


def batch_header(origin: Originator, entries: Sequence[AchEntry], effective: date, batch_number: int) -> str:
    return (
        "5"
        + service_class(entries)
        + alpha(origin.company_name, 16)
        + alpha("", 20)  # company discretionary data
        + alpha(origin.company_id, 10)
        + alpha(origin.sec_code, 3)
        + alpha(ENTRY_DESCRIPTION, 10)
        + alpha("", 6)  # company descriptive date
        + effective.strftime("%y%m%d")
        + alpha("", 3)  # settlement date: filled in by the ACH operator
        + "1"  # originator status code
        + origin.originating_dfi
        + numeric(batch_number, 7)
    )  # fmt: skip


def entry_detail(entry: AchEntry, trace_number: str) -> str:
    return (
        "6"
        + numeric(entry.transaction_code, 2)
        + entry.routing_number  # RDFI identification (8) + check digit (1)
        + alpha(entry.account_number, 17)
        + numeric(entry.amount, 10)
        + alpha(entry.individual_id, 15)  # individual identification number
        + alpha(entry.name, 22)
        + alpha("", 2)  # discretionary data
        + "0"  # no addenda record
        + trace_number
    )  # fmt: skip


def entry_hash(entries: Sequence[AchEntry]) -> int:
    """Sum of the RDFIs' 8-digit routing numbers, its 10 rightmost digits kept."""
    return sum(int(entry.routing_number[:8]) for entry in entries) % 10**10


def batch_control(origin: Originator, entries: Sequence[AchEntry], batch_number: int) -> str:
    debits, credits = totals(entries)
    return (
        "8"
        + service_class(entries)
        + numeric(len(entries), 6)  # entry/addenda count
        + numeric(entry_hash(entries), 10)
        + numeric(debits, 12)
        + numeric(credits, 12)
        + alpha(origin.company_id, 10)
        + alpha("", 19)  # message authentication code
        + alpha("", 6)  # reserved
        + origin.originating_dfi
        + numeric(batch_number, 7)
    )  # fmt: skip


def file_control(entries: Sequence[AchEntry], batch_count: int, block_count: int) -> str:
    debits, credits = totals(entries)
    return (
        "9"
        + numeric(batch_count, 6)
        + numeric(block_count, 6)
        + numeric(len(entries), 8)  # entry/addenda count
        + numeric(entry_hash(entries), 10)
        + numeric(debits, 12)
        + numeric(credits, 12)
        + alpha("", 39)  # reserved
    )  # fmt: skip


def offset_entry(origin: Originator, credits: Sequence[AchEntry]) -> AchEntry:
    """The debit that balances the batch: the credits' total, from the platform's account at the ODFI."""
    return AchEntry(
        payout_id=0,
        transaction_code=DEBIT_CODES[origin.offset_account_type],
        routing_number=origin.immediate_destination,
        account_number=origin.offset_account,
        amount=sum(entry.amount for entry in credits),
        name=ascii_upper(origin.company_name),
    )


def render_nacha(origin: Originator, credits: Sequence[AchEntry], created: datetime, batch_id: int) -> NachaFile:
    """One file with one batch of credits (and their offset, if the settings ask for one)."""
    batch_number = 1
    entries = [*credits, offset_entry(origin, credits)] if origin.offset_account else list(credits)
    traces = [origin.originating_dfi + numeric(sequence, 7) for sequence in range(1, len(entries) + 1)]
    lines = [
        file_header(origin, created, file_id_modifier(batch_id), str(batch_id)),
        batch_header(origin, entries, next_business_day(created.date()), batch_number),
        *(entry_detail(entry, trace) for entry, trace in zip(entries, traces, strict=True)),
        batch_control(origin, entries, batch_number),
    ]
    trace_numbers = {entry.payout_id: trace for entry, trace in zip(credits, traces, strict=False)}
    block_count = -(-(len(lines) + 1) // BLOCKING_FACTOR)  # the file control record included
    lines.append(file_control(entries, batch_count=1, block_count=block_count))
    lines += ["9" * RECORD_LENGTH] * (block_count * BLOCKING_FACTOR - len(lines))
    for line in lines:
        if len(line) != RECORD_LENGTH:
            raise AssertionError(f"NACHA record of {len(line)} characters: {line!r}")
    return NachaFile(text="\n".join(lines) + "\n", trace_numbers=trace_numbers)


class AchProvider:
    method = "ach"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))

    async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution:
        entries, failed = check_each(instructions, check_instruction)
        if not entries:
            return BatchExecution(results=list(failed.values()))
        nacha = render_nacha(originator_from_settings(self.settings), entries, self.clock(), batch_id)
        results = file_results(instructions, failed, nacha.trace_numbers)
        return BatchExecution(
            results=results,
            file_name=f"ach-batch-{batch_id}.ach",
            file_bytes=nacha.text.encode("ascii"),
            media_type="text/plain",
        )
