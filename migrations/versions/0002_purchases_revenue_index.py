"""purchases: the (partner_id, occurred_at) index covers currency, amount and refunded_amount on PostgreSQL

A partner's referred revenue of the month is summed on every commissioned sale (the bonus steps of its rate);
with the amounts in the index, PostgreSQL sums them from the index alone instead of visiting each purchase row
(bench/README.md, benchmark 2). SQLite has no INCLUDE: the index stays as it was there.

The rebuild locks purchases against writes while it runs: on a large table, run it in a quiet hour.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:35:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_purchases_partner_id_occurred_at"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="purchases")
    op.create_index(
        INDEX,
        "purchases",
        ["partner_id", "occurred_at"],
        postgresql_include=["currency", "amount", "refunded_amount"],
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="purchases")
    op.create_index(INDEX, "purchases", ["partner_id", "occurred_at"])
