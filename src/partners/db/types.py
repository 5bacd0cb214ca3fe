"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import CHAR, TypeDecorator

# SQLite only autoincrements an INTEGER PRIMARY KEY, so ids are BIGINT on PostgreSQL, INTEGER on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Money: integer minor units in BIGINT, beside a CHAR(3) ISO-4217 currency column.
MinorUnits = BigInteger


class Currency(TypeDecorator[str]):
    """ISO-4217 code, upper case, CHAR(3)."""

    impl = CHAR(3)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.upper() if value is not None else None


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both engines (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def start_of_utc_day(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


ShortText = String(255)
