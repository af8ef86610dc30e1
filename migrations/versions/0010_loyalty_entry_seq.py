"""Loyalty entries carry their posting order, drawn under the account lock

Time-ordered ids written by two server processes within one millisecond need not sort in the
order the account's lock granted, so an account's balance chain follows `seq` instead.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 05:15:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding the column rewrites the table without row triggers, so the append-only trigger
    # stays in force; existing entries are numbered in the order they were stored.
    op.add_column(
        "loyalty_entries",
        sa.Column(
            "seq",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Posting order: drawn at insert, under the account's lock, so an account's "
            "entries in seq order chain their balance_after (time-ordered ids from two processes "
            "in one millisecond need not).",
        ),
    )
    op.drop_index("ix_loyalty_entries_account", table_name="loyalty_entries")
    op.create_index(
        "ix_loyalty_entries_account", "loyalty_entries", ["tenant_id", "customer_id", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_loyalty_entries_account", table_name="loyalty_entries")
    op.create_index(
        "ix_loyalty_entries_account", "loyalty_entries", ["tenant_id", "customer_id", "id"]
    )
    op.drop_column("loyalty_entries", "seq")
