"""customer changes: a count of the statements that wrote a tenant's customers, facts or scores

The API process keeps a tenant's customers and buying orders as columns in memory for segment
previews (app/services/segments/member_frames.py); it may answer from them only while nothing
they hold has changed. A statement-level trigger on `customers`, `customer_facts`,
`customer_scores` and `product_category_rules` appends one row per tenant a statement touched;
the customer facts refresh that follows every write to orders appends one too. Appending never
waits on another writer, and a transaction's rows become visible when it commits, so the sum of
a tenant's `statements` grows with every committed change: a frame loaded in a snapshot where
the sum was N is current while the sum is still N. Compaction folds a tenant's rows into one
with the same sum.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 16:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION customer_changes_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_changes (tenant_id) SELECT DISTINCT tenant_id FROM changed;
    RETURN NULL;
END
$$
"""

# Category rules decide which orders an `ordered` category condition counts.
TABLES = ("customers", "customer_facts", "customer_scores", "product_category_rules")
EVENTS = (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD"))


def upgrade() -> None:
    op.create_table(
        "customer_changes",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "statements",
            sa.BigInteger(),
            server_default="1",
            nullable=False,
            comment="Statements this row stands for (more than one after compaction).",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_customer_changes")),
    )
    op.execute(FUNCTION)
    for table in TABLES:
        for event, side in EVENTS:
            op.execute(
                f"CREATE TRIGGER customer_changes_{event} AFTER {event.upper()} ON {table} "
                f"REFERENCING {side} TABLE AS changed FOR EACH STATEMENT "
                "EXECUTE FUNCTION customer_changes_append()"
            )


def downgrade() -> None:
    for table in TABLES:
        for event, _ in EVENTS:
            op.execute(f"DROP TRIGGER customer_changes_{event} ON {table}")
    op.execute("DROP FUNCTION customer_changes_append")
    op.drop_table("customer_changes")
