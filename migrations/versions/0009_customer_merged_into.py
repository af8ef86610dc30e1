"""Customers merged away while other history still names them point at the survivor

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 05:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customers",
        sa.Column(
            "merged_into_id",
            sa.UUID(),
            nullable=True,
            comment="Set when merged into another customer while history elsewhere still names "
            "this one",
        ),
    )
    # Earlier merges marked such customers in their attributes.
    op.execute(
        """
        UPDATE customers
        SET merged_into_id = (attributes ->> 'merged_into')::uuid, attributes = '{}'
        WHERE attributes ? 'merged_into'
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE customers
        SET attributes = jsonb_build_object('merged_into', merged_into_id::text)
        WHERE merged_into_id IS NOT NULL
        """
    )
    op.drop_column("customers", "merged_into_id")
