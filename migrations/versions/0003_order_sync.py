"""Order sync: merge suggestions, receiver change hash on orders, refunds on order items

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 03:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merge_suggestions",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("other_customer_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_merge_suggestions_tenant_id_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "other_customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_merge_suggestions_tenant_id_other_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_merge_suggestions")),
        sa.UniqueConstraint(
            "tenant_id",
            "customer_id",
            "other_customer_id",
            name=op.f("uq_merge_suggestions_tenant_id_customer_id_other_customer_id"),
        ),
    )
    op.create_index("ix_merge_suggestions_open", "merge_suggestions", ["tenant_id", "status", "id"])
    op.create_index(
        "ix_merge_suggestions_other", "merge_suggestions", ["tenant_id", "other_customer_id"]
    )
    op.add_column(
        "orders",
        sa.Column(
            "receiver_hash",
            sa.LargeBinary(),
            nullable=True,
            comment="Keyed hash of name, phone and address: detects changes re-imports bring.",
        ),
    )
    op.add_column("order_items", sa.Column("refund_fen", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("order_items", "refund_fen")
    op.drop_column("orders", "receiver_hash")
    op.drop_index("ix_merge_suggestions_other", table_name="merge_suggestions")
    op.drop_index("ix_merge_suggestions_open", table_name="merge_suggestions")
    op.drop_table("merge_suggestions")
