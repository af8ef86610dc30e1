"""RFM scores and lifecycle stages move from customer_facts to a narrow customer_scores table

The tenant-wide recompute rewrites these columns for every customer whose values change: on a
tenant's first recompute that is every customer, and rewriting the wide facts row (product and
category arrays, four secondary indexes of which two are GIN) cost most of the time.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 06:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCORES = "rfm_r, rfm_f, rfm_m, rfm_group, rfm_as_of, lifecycle_stage, lifecycle_since"


def upgrade() -> None:
    op.create_table(
        "customer_scores",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("rfm_r", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_f", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_m", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_group", sa.String(length=30), nullable=True),
        sa.Column("rfm_as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "lifecycle_stage", sa.String(length=20), server_default="prospect", nullable=False
        ),
        sa.Column("lifecycle_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_customer_scores_tenant_id_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name=op.f("pk_customer_scores")),
        postgresql_with={"fillfactor": 80},
    )
    op.execute(
        f"INSERT INTO customer_scores (tenant_id, customer_id, {_SCORES}) "
        f"SELECT tenant_id, customer_id, {_SCORES} FROM customer_facts "
        "ORDER BY tenant_id, customer_id"
    )
    for column in _SCORES.split(", "):
        op.drop_column("customer_facts", column)


def downgrade() -> None:
    op.add_column("customer_facts", sa.Column("rfm_r", sa.SmallInteger(), nullable=True))
    op.add_column("customer_facts", sa.Column("rfm_f", sa.SmallInteger(), nullable=True))
    op.add_column("customer_facts", sa.Column("rfm_m", sa.SmallInteger(), nullable=True))
    op.add_column("customer_facts", sa.Column("rfm_group", sa.String(length=30), nullable=True))
    op.add_column(
        "customer_facts", sa.Column("rfm_as_of", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "customer_facts",
        sa.Column(
            "lifecycle_stage", sa.String(length=20), server_default="prospect", nullable=False
        ),
    )
    op.add_column(
        "customer_facts", sa.Column("lifecycle_since", sa.DateTime(timezone=True), nullable=True)
    )
    # A customer scored before any import touched them had a facts row (the old recompute made
    # one for every customer): give them one again, with no orders.
    op.execute(
        "INSERT INTO customer_facts (tenant_id, customer_id, order_count, total_spent_fen, "
        "refund_count, refund_fen, updated_at) "
        "SELECT s.tenant_id, s.customer_id, 0, 0, 0, 0, now() FROM customer_scores s "
        "ON CONFLICT (tenant_id, customer_id) DO NOTHING"
    )
    op.execute(
        f"UPDATE customer_facts f SET ({_SCORES}) = "
        f"(s.rfm_r, s.rfm_f, s.rfm_m, s.rfm_group, s.rfm_as_of, s.lifecycle_stage, "
        "s.lifecycle_since) FROM customer_scores s "
        "WHERE f.tenant_id = s.tenant_id AND f.customer_id = s.customer_id"
    )
    op.drop_table("customer_scores")
