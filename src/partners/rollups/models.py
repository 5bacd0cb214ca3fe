"""Daily per-partner rollups behind the dashboard, kept in step with the raw tables in the same transactions.

Counters are summed over a period's days. Distinct counts (unique visitors, paying customers) are not additive
over days, so they are kept as "last seen" histograms: `partner_visitors` / `partner_buyers` hold each
visitor's / customer's latest day, and the day rows count how many have their latest day on that day. For a
period that ends on or after the latest day anyone was seen (the dashboard's usual periods end today), the
distinct count over the period is the sum of the histogram over its days.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, IdMixin
from partners.db.types import BigId, Currency


class PartnerDay(IdMixin, Base):
    """A partner's day: human and bot clicks, signups (customers attributed that day), and the last-seen
    histograms of visitors (distinct hashed IPs of human clicks) and buyers (distinct paying customers)."""

    __tablename__ = "rollup_partner_days"
    __table_args__ = (UniqueConstraint("partner_id", "day"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    signups: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    visitors: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    buyers: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class PartnerDayRevenue(IdMixin, Base):
    """The partner's own (level-1) customers' purchases by sale day and currency."""

    __tablename__ = "rollup_partner_revenue"
    __table_args__ = (UniqueConstraint("partner_id", "day", "currency"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    purchases: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    gross: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class PartnerDayCommissions(IdMixin, Base):
    """The partner's commissions by the sale's day, currency, status and level."""

    __tablename__ = "rollup_partner_commissions"
    __table_args__ = (UniqueConstraint("partner_id", "day", "currency", "status", "level"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reversed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class PartnerVisitor(IdMixin, Base):
    """The latest day of a human click per (partner, hashed IP)."""

    __tablename__ = "rollup_partner_visitors"
    __table_args__ = (UniqueConstraint("partner_id", "ip_hash"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    ip_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    last_day: Mapped[date] = mapped_column(Date, nullable=False)


class PartnerBuyer(IdMixin, Base):
    """The latest sale day per (partner, customer)."""

    __tablename__ = "rollup_partner_buyers"
    __table_args__ = (UniqueConstraint("partner_id", "customer_id"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"), nullable=False)
    last_day: Mapped[date] = mapped_column(Date, nullable=False)


class LinkDay(IdMixin, Base):
    """A tracking link's day: human and bot clicks, the visitors' last-seen histogram, and the customers
    attributed that day through one of its clicks (to its partner) and how many of them have bought since."""

    __tablename__ = "rollup_link_days"
    __table_args__ = (
        UniqueConstraint("link_id", "day"),
        # A links page sums every day of each of its links, and a link's days lie on as many table pages as it has
        # days (rows are written day by day across all links). With the counters in an index, the sums read a few
        # index pages per link instead: an index-only scan on PostgreSQL, a covering index on SQLite (bench/README.md,
        # round 15).
        Index("ix_rollup_link_days_totals", "link_id", "day", "clicks", "bot_clicks", "visitors", "signups", "buyers"),
    )

    link_id: Mapped[int] = mapped_column(BigId, ForeignKey("tracking_links.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    visitors: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    signups: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    buyers: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class LinkVisitor(IdMixin, Base):
    """The latest day of a human click per (link, hashed IP)."""

    __tablename__ = "rollup_link_visitors"
    __table_args__ = (UniqueConstraint("link_id", "ip_hash"),)

    link_id: Mapped[int] = mapped_column(BigId, ForeignKey("tracking_links.id"), nullable=False)
    ip_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    last_day: Mapped[date] = mapped_column(Date, nullable=False)
