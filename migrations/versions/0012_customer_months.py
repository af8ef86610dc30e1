"""customer_months: each customer's buying orders and revenue per month, for the cohort report

At 1,000,000 customers / 5,000,000 orders the cohort report fetched every order of a year's
new buyers one by one from the orders heap (2-4 s); a few narrow rows per buyer replace them.
Filled here from the orders; from then on the customer facts refresh rewrites a customer's rows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 11:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_months",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column(
            "month", sa.Date(), nullable=False, comment="First day of the month (Asia/Shanghai)."
        ),
        sa.Column(
            "orders", sa.Integer(), nullable=False, comment="Buying orders paid in the month."
        ),
        sa.Column(
            "revenue_fen",
            sa.BigInteger(),
            nullable=False,
            comment="Paid less refunded, of those orders.",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_customer_months_tenant_id_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "customer_id", "month", name=op.f("pk_customer_months")
        ),
    )
    op.execute("SET LOCAL work_mem = '256MB'")
    op.execute(
        """
        INSERT INTO customer_months (tenant_id, customer_id, month, orders, revenue_fen)
        SELECT o.tenant_id, o.customer_id,
               date_trunc('month', o.paid_at AT TIME ZONE 'Asia/Shanghai')::date,
               count(*), sum(o.paid_fen - o.refund_fen)
        FROM orders o
        JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
        WHERE o.paid_at IS NOT NULL AND o.status <> 'pending_payment'
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        """
    )


def downgrade() -> None:
    op.drop_table("customer_months")
