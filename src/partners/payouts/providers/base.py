"""The interface every payout rail implements (one file per rail in this folder).

A provider never touches the database. The batch job (payouts/tasks.py) builds one `PayoutInstruction` per
payout of a batch that uses the provider's method, calls `execute` once per (batch, method), stores the file
the provider returns (if any) and applies each `ProviderResult`:

- "paid": the money left (platform credit posted, PayPal item SUCCESS) → ledger hold posted, commissions paid;
- "failed": nothing left → hold voided (money available again), `failure_reason` shown to the partner;
- "processing": a file was produced or a remote batch is still running → waits for a bank confirmation
  upload (SEPA, ACH, manual) or for `poll` (providers that implement `PollingProvider`, e.g. PayPal).

Amounts are integer minor units of `currency` (exponent from `currency_exponent`). `details` are the
decrypted payout details of the partner's method, always with every key of `DETAIL_KEYS[method]` present
(optional ones as ""):

- platform_credit: {"account_reference"}  — the partner's host user id / wallet reference ("" = partner id)
- paypal:          {"email"}
- sepa:            {"iban", "bic", "holder"}          — IBAN/BIC compact, upper case, validated with schwifty
- ach:             {"routing_number", "account_number", "account_type" ("checking" | "savings"), "holder"}
- wise:            {"holder", "bank_name", "account_number", "bank_code", "country", "email"}
- crypto:          {"network" ("bitcoin" | "ethereum" | "tron" ...), "address"}

wise and crypto have no automated rail: `get_provider` gives them the manual (CSV) provider.

Provider settings live in `partners.settings.Settings` (see the PARTNERS_SEPA_*, PARTNERS_ACH_*,
PARTNERS_PAYPAL_* variables); a provider is built as `Provider(settings)`.

`execute` must be idempotent by `batch_id`: a job that runs twice (at-least-once delivery) may call it twice
for the same batch, and must not pay twice (PayPal: `sender_batch_id` derived from batch_id + method).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal, Protocol, TypeVar, runtime_checkable

from holidays import financial_holidays

# The settlement systems' closing days (the `holidays` package's calendars, extended year by year on lookup).
FEDERAL_RESERVE_HOLIDAYS: Container[date] = financial_holidays("XFED")  # ACH
TARGET2_HOLIDAYS: Container[date] = financial_holidays("XECB")  # SEPA (the ECB's TARGET2 closing days)


def business_day_on_or_after(day: date, closed: Container[date]) -> date:
    """`day`, or the first day after it that is neither a weekend nor one of the `closed` days."""
    while day.weekday() >= 5 or day in closed:
        day += timedelta(days=1)
    return day


PayoutMethod = Literal["platform_credit", "paypal", "sepa", "ach", "wise", "crypto"]
PAYOUT_METHODS: tuple[str, ...] = ("platform_credit", "paypal", "sepa", "ach", "wise", "crypto")

DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    "platform_credit": ("account_reference",),
    "paypal": ("email",),
    "sepa": ("iban", "bic", "holder"),
    "ach": ("routing_number", "account_number", "account_type", "holder"),
    "wise": ("holder", "bank_name", "account_number", "bank_code", "country", "email"),
    "crypto": ("network", "address"),
}

ResultStatus = Literal["processing", "paid", "failed"]

# ISO 4217 exponents that are not 2; everything else has 2 decimals.
_CURRENCY_EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def currency_exponent(currency: str) -> int:
    return _CURRENCY_EXPONENTS.get(currency.upper(), 2)


@dataclass(frozen=True)
class PayoutInstruction:
    """One payout to execute."""

    payout_id: int
    partner_id: int
    partner_name: str
    partner_email: str
    amount: int
    currency: str
    method: str
    details: dict[str, str]


@dataclass(frozen=True)
class ProviderResult:
    """The outcome of one payout. `reference` is the rail's id (end-to-end id, trace number, PayPal
    payout_item_id); `failure_reason` is shown to the partner, so keep it readable."""

    payout_id: int
    status: ResultStatus
    reference: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class BatchExecution:
    """What one `execute` (or `poll`) produced: a result for every instruction it was given, and at most
    one file for finance to download / upload to the bank (`file_name` is a plain name, no folders)."""

    results: list[ProviderResult]
    file_name: str | None = None
    file_bytes: bytes | None = None
    media_type: str | None = None
    remote_reference: str | None = None  # e.g. PayPal payout_batch_id, kept for polling
    extra: dict[str, str] = field(default_factory=dict)


class ProviderError(Exception):
    """The rail could not be reached or refused the whole batch; the job retries with backoff.

    Raise it for transient trouble only. A payout the rail rejects for good is a ProviderResult with
    status "failed" instead.
    """


@runtime_checkable
class PayoutProvider(Protocol):
    method: str

    async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution: ...


@runtime_checkable
class PollingProvider(PayoutProvider, Protocol):
    """A rail that finishes asynchronously (PayPal). `poll` is called by a later job with the instructions
    still "processing" and the `remote_reference` returned by `execute`; it returns their current results."""

    async def poll(
        self, batch_id: int, remote_reference: str | None, instructions: Sequence[PayoutInstruction]
    ) -> BatchExecution: ...


Checked = TypeVar("Checked")


def check_each(
    instructions: Sequence[PayoutInstruction], check: Callable[[PayoutInstruction], Checked]
) -> tuple[list[Checked], dict[int, ProviderResult]]:
    """The instructions a file rail can pay, checked into what its file needs, and a failed result (with the
    check's ValueError as the reason) for each of the others."""
    payable: list[Checked] = []
    failed: dict[int, ProviderResult] = {}
    for item in instructions:
        try:
            payable.append(check(item))
        except ValueError as error:
            failed[item.payout_id] = ProviderResult(item.payout_id, "failed", failure_reason=str(error))
    return payable, failed


def file_results(
    instructions: Sequence[PayoutInstruction], failed: Mapping[int, ProviderResult], references: Mapping[int, str]
) -> list[ProviderResult]:
    """One result per instruction, in order: failed as checked, else processing with its reference in the file."""
    return [
        failed.get(item.payout_id) or ProviderResult(item.payout_id, "processing", reference=references[item.payout_id])
        for item in instructions
    ]
