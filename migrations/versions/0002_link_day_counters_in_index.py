"""rollup_link_days: the counters in the (link_id, day) unique index on PostgreSQL (index-only link totals)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "rollup_link_days"
NAME = "uq_rollup_link_days_link_id_day"
COUNTERS = ["clicks", "bot_clicks", "visitors", "signups", "buyers"]


def _replace_unique_constraint(include: list[str]) -> None:
    # In one transaction, under the table's lock: click writers wait for the index build (seconds for millions of
    # link-days) and never see the table without its unique index.
    if op.get_bind().dialect.name != "postgresql":  # SQLite has no INCLUDE: its unique index stays as it was
        return
    op.drop_constraint(NAME, TABLE, type_="unique")
    covering = f" INCLUDE ({', '.join(include)})" if include else ""  # op.create_unique_constraint can't name them
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {NAME} UNIQUE (link_id, day){covering}")


def upgrade() -> None:
    _replace_unique_constraint(COUNTERS)


def downgrade() -> None:
    _replace_unique_constraint([])
