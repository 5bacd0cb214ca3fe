"""rollup_link_days: an index holding each link's day counters (a links page's totals read from it alone)

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

NAME = "ix_rollup_link_days_totals"


def upgrade() -> None:
    columns = ["link_id", "day", "clicks", "bot_clicks", "visitors", "signups", "buyers"]
    op.create_index(NAME, "rollup_link_days", columns, unique=False)


def downgrade() -> None:
    op.drop_index(NAME, table_name="rollup_link_days")
