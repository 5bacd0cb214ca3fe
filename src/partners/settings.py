"""Settings from environment variables and `.env` (pydantic-settings).

The plan's own variables keep their exact names and formats:
`AFFILIATE_COMMISSION_RATES`, `PAYOUT_MINIMUM_AMOUNT`, `COMMISSION_CALCULATION_FREQUENCY`.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

DEFAULT_COMMISSION_RATES: dict[str, Decimal] = {
    "starter": Decimal("0.05"),
    "pro": Decimal("0.15"),
    "enterprise": Decimal("0.25"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production", "test"] = Field(
        default="development", validation_alias="PARTNERS_ENV"
    )
    database_url: str = Field(default="sqlite+aiosqlite:///./var/partners.db", validation_alias="DATABASE_URL")
    secret_key: str = Field(default="dev-insecure-secret-change-me", validation_alias="SECRET_KEY")
    base_url: str = Field(default="http://127.0.0.1:8000", validation_alias="PARTNERS_BASE_URL")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    embedded_worker: bool = Field(default=True, validation_alias="PARTNERS_EMBEDDED_WORKER")
    # The demo host "Namaskah shop" at /demo-shop (web/demo_shop.py): on in development, or with this set
    # outside production; never in production.
    demo_shop: bool = Field(default=False, validation_alias="PARTNERS_DEMO_SHOP")
    require_staff_2fa: bool = Field(default=False, validation_alias="PARTNERS_REQUIRE_STAFF_2FA")
    login_rate_limit: int = Field(default=5, ge=1, validation_alias="PARTNERS_LOGIN_RATE_LIMIT")
    login_rate_window_seconds: int = Field(default=300, ge=1, validation_alias="PARTNERS_LOGIN_RATE_WINDOW")
    session_max_age_seconds: int = Field(default=12 * 3600, ge=60, validation_alias="PARTNERS_SESSION_MAX_AGE")
    email_backend: Literal["console", "file", "smtp"] = Field(
        default="console", validation_alias="PARTNERS_EMAIL_BACKEND"
    )
    email_from: str = Field(default="partners@namaskah.local", validation_alias="PARTNERS_EMAIL_FROM")
    email_dir: str = Field(default="./var/mail", validation_alias="PARTNERS_EMAIL_DIR")
    # The click journal (tracking/journal.py): each server process appends its clicks here before answering the
    # redirect; a local folder per host. Empty: no journal (clicks wait in memory only until the next flush).
    click_journal_dir: str = Field(default="./var/clicks", validation_alias="PARTNERS_CLICK_JOURNAL_DIR")
    click_flush_seconds: float = Field(default=0.25, gt=0, le=60, validation_alias="PARTNERS_CLICK_FLUSH_SECONDS")
    smtp_host: str = Field(default="127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=25, validation_alias="SMTP_PORT")

    affiliate_commission_rates: dict[str, Decimal] = Field(
        default_factory=lambda: dict(DEFAULT_COMMISSION_RATES), validation_alias="AFFILIATE_COMMISSION_RATES"
    )
    payout_minimum_amount: Decimal = Field(default=Decimal("50.0"), validation_alias="PAYOUT_MINIMUM_AMOUNT")
    commission_calculation_frequency: Literal["hourly", "daily", "weekly"] = Field(
        default="daily", validation_alias="COMMISSION_CALCULATION_FREQUENCY"
    )

    # Disputes (disputes/): the staff inbox, the SLA target for a staff answer, evidence upload limits.
    disputes_inbox: str = Field(default="disputes@namaskah.local", validation_alias="PARTNERS_DISPUTES_INBOX")
    dispute_sla_hours: int = Field(default=48, ge=1, validation_alias="PARTNERS_DISPUTE_SLA_HOURS")
    dispute_evidence_max_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1, validation_alias="PARTNERS_DISPUTE_EVIDENCE_MAX_BYTES"
    )
    dispute_evidence_max_files: int = Field(default=5, ge=1, validation_alias="PARTNERS_DISPUTE_EVIDENCE_MAX_FILES")

    # Payouts (payouts/): cool-down after changing payout details, second approver above an amount (major
    # units of the batch currency), the host's platform-credit callback, and each rail's account.
    payout_details_cooldown_hours: int = Field(
        default=72, ge=0, validation_alias="PARTNERS_PAYOUT_DETAILS_COOLDOWN_HOURS"
    )
    payout_second_approval_amount: Decimal = Field(
        default=Decimal("10000"), ge=0, validation_alias="PARTNERS_PAYOUT_SECOND_APPROVAL_AMOUNT"
    )
    host_callback_url: str = Field(default="", validation_alias="PARTNERS_HOST_CALLBACK_URL")
    host_callback_secret: str = Field(default="", validation_alias="PARTNERS_HOST_CALLBACK_SECRET")
    # The SEPA and ACH originator defaults below are published sample accounts (placeholders) that let the
    # demo and the tests generate valid files; a deployment paying by bank file must set its own.
    sepa_debtor_name: str = Field(default="Namaskah Partners", validation_alias="PARTNERS_SEPA_DEBTOR_NAME")
    sepa_debtor_iban: str = Field(default="DE89370400440532013000", validation_alias="PARTNERS_SEPA_DEBTOR_IBAN")
    sepa_debtor_bic: str = Field(default="COBADEFFXXX", validation_alias="PARTNERS_SEPA_DEBTOR_BIC")
    sepa_schema: Literal["pain.001.001.03", "pain.001.001.09"] = Field(
        default="pain.001.001.09", validation_alias="PARTNERS_SEPA_SCHEMA"
    )
    ach_immediate_destination: str = Field(default="021000021", validation_alias="PARTNERS_ACH_IMMEDIATE_DESTINATION")
    ach_immediate_destination_name: str = Field(
        default="JPMORGAN CHASE", validation_alias="PARTNERS_ACH_IMMEDIATE_DESTINATION_NAME"
    )
    ach_immediate_origin: str = Field(default="1234567890", validation_alias="PARTNERS_ACH_IMMEDIATE_ORIGIN")
    ach_company_name: str = Field(default="NAMASKAH", validation_alias="PARTNERS_ACH_COMPANY_NAME")
    ach_company_id: str = Field(default="1234567890", validation_alias="PARTNERS_ACH_COMPANY_ID")
    ach_originating_dfi: str = Field(default="02100002", validation_alias="PARTNERS_ACH_ORIGINATING_DFI")
    ach_sec_code: Literal["PPD", "CCD"] = Field(default="PPD", validation_alias="PARTNERS_ACH_SEC_CODE")
    # Set to balance the file with an offset debit from the platform's account at the ODFI (some banks ask).
    ach_offset_account: str = Field(default="", validation_alias="PARTNERS_ACH_OFFSET_ACCOUNT")
    ach_offset_account_type: Literal["checking", "savings"] = Field(
        default="checking", validation_alias="PARTNERS_ACH_OFFSET_ACCOUNT_TYPE"
    )
    paypal_base_url: str = Field(
        default="https://api-m.sandbox.paypal.com", validation_alias="PARTNERS_PAYPAL_BASE_URL"
    )
    paypal_client_id: str = Field(default="", validation_alias="PARTNERS_PAYPAL_CLIENT_ID")
    paypal_client_secret: str = Field(default="", validation_alias="PARTNERS_PAYPAL_CLIENT_SECRET")
    paypal_poll_attempts: int = Field(default=5, ge=0, validation_alias="PARTNERS_PAYPAL_POLL_ATTEMPTS")
    paypal_poll_interval_seconds: float = Field(
        default=2.0, ge=0, validation_alias="PARTNERS_PAYPAL_POLL_INTERVAL_SECONDS"
    )

    @field_validator("affiliate_commission_rates")
    @classmethod
    def _rates_between_zero_and_one(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        for tier, rate in rates.items():
            if not Decimal(0) <= rate <= Decimal(1):
                raise ValueError(f"rate for {tier!r} must be between 0 and 1, got {rate}")
        return rates

    @field_validator("payout_minimum_amount")
    @classmethod
    def _minimum_not_negative(cls, amount: Decimal) -> Decimal:
        if amount < 0:
            raise ValueError("must not be negative")
        return amount

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, key: str) -> str:
        if len(key) < 16:
            raise ValueError("must be at least 16 characters")
        return key

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def payout_minimum_minor(self, exponent: int = 2) -> int:
        """PAYOUT_MINIMUM_AMOUNT in minor units of a currency with `exponent` decimals."""
        return int((self.payout_minimum_amount * (10**exponent)).to_integral_value())


def _variable_of_field(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    return alias if isinstance(alias, str) else field.upper()


def describe_settings_error(error: ValidationError | PydanticSettingsError) -> str:
    """One line naming the variable, for start-up to print before it stops."""
    if isinstance(error, PydanticSettingsError):
        match = re.search(r'field "(\w+)"', str(error))
        variable = _variable_of_field(match.group(1)) if match else "settings"
        return f"invalid setting {variable}: not valid JSON"
    first = error.errors()[0]
    variable = str(first["loc"][0]) if first["loc"] else "settings"
    message = first["msg"].replace("\n", " ")
    return f"invalid setting {variable.upper()}: {message}"


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except (ValidationError, PydanticSettingsError) as error:
        print(describe_settings_error(error), file=sys.stderr)
        raise SystemExit(2) from None
