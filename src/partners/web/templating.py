"""Jinja2 templates (with jinja2-fragments, so an htmx request can get one block) and display filters."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.numbers import format_currency, format_decimal, get_currency_precision
from jinja2_fragments.fastapi import Jinja2Blocks

from partners import __version__

WEB_ROOT = Path(__file__).parent
TEMPLATES_DIR = WEB_ROOT / "templates"
STATIC_DIR = WEB_ROOT / "static"
LOCALE = "en_US"

templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))


def money(amount: int | None, currency: str | None) -> str:
    """Minor units → '$1,234.50' (the currency's own decimals)."""
    if amount is None or not currency:
        return "—"
    major = Decimal(amount).scaleb(-get_currency_precision(currency.upper()))
    return str(format_currency(major, currency.upper(), locale=LOCALE))


def major_units(amount: int, currency: str) -> str:
    """Minor units → '1234.50' (no symbol, for form fields and CSV)."""
    exponent = get_currency_precision(currency.upper())
    return f"{Decimal(amount).scaleb(-exponent):.{exponent}f}"


def number(value: int | float | Decimal | None) -> str:
    return "—" if value is None else str(format_decimal(value, locale=LOCALE))


def percent_bps(bps: int | None) -> str:
    """Basis points → '12.5%'."""
    if bps is None:
        return "—"
    value = Decimal(bps) / 100
    return f"{value.normalize():f}%"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%d %b %Y, %H:%M UTC")
    return value.strftime("%d %b %Y")


def day(value: datetime | date | None) -> str:
    return "—" if value is None else value.strftime("%d %b %Y")


def iso(value: datetime | date | None) -> str:
    return "" if value is None else value.isoformat()


def label(value: Any) -> str:
    """'awaiting_staff' → 'Awaiting staff'."""
    return str(value).replace("_", " ").capitalize() if value is not None else ""


def zip_self(values: Any) -> list[tuple[Any, Any]]:
    """['USD', 'EUR'] → [('USD', 'USD'), ('EUR', 'EUR')]: options whose value is their text."""
    return [(value, value) for value in values]


templates.env.filters.update(
    zip_self=zip_self,
    money=money,
    major_units=major_units,
    number=number,
    percent_bps=percent_bps,
    when=when,
    day=day,
    iso=iso,
    label=label,
)
templates.env.globals.update(
    ASSET_VERSION=__version__,
    HTMX_JS="vendor/htmx-2.0.11.min.js",
    CHART_JS="vendor/chart-4.6.1.umd.min.js",
)
