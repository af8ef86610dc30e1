"""Loyalty ledgers: program versions, accounts, append-only entries, lots, order earns, tiers

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-26 03:50:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("loyalty_entries", "loyalty_lot_consumptions")

REFUSE_CHANGES = """
CREATE FUNCTION loyalty_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'restrict_violation',
          HINT = 'post a reversing or adjusting entry instead';
END $$
"""


def upgrade() -> None:
    op.create_table(
        "loyalty_programs",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_loyalty_programs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_loyalty_programs")),
    )
    op.create_index(
        "ix_loyalty_programs_effective",
        "loyalty_programs",
        ["tenant_id", "effective_from"],
        unique=False,
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_points", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(length=50), nullable=True),
        sa.Column("tier_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merged_into", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_loyalty_accounts_tenant_id_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name=op.f("pk_loyalty_accounts")),
    )
    op.create_index(
        "ix_loyalty_accounts_tier", "loyalty_accounts", ["tenant_id", "tier"], unique=False
    )
    op.create_table(
        "loyalty_entries",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column(
            "shortfall",
            sa.BigInteger(),
            nullable=False,
            comment="Points a reversal could not claw back because they were already spent.",
        ),
        sa.Column("source_type", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=True),
        sa.Column(
            "related_entry_id",
            sa.UUID(),
            nullable=True,
            comment="The entry this one reverses, or the other half of a merge pair.",
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "(kind IN ('earn', 'bonus', 'referral') AND points > 0)"
            " OR (kind IN ('redeem', 'expire') AND points < 0)"
            " OR (kind = 'adjust' AND points <> 0)"
            " OR kind = 'reverse'",
            name=op.f("ck_loyalty_entries_points_sign"),
        ),
        sa.CheckConstraint(
            "kind <> 'redeem' OR balance_after >= 0",
            name=op.f("ck_loyalty_entries_redeem_never_overdraws"),
        ),
        sa.CheckConstraint(
            "shortfall >= 0", name=op.f("ck_loyalty_entries_shortfall_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["loyalty_accounts.tenant_id", "loyalty_accounts.customer_id"],
            name=op.f("fk_loyalty_entries_tenant_id_customer_id_loyalty_accounts"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_loyalty_entries")),
    )
    op.create_index(
        "ix_loyalty_entries_account",
        "loyalty_entries",
        ["tenant_id", "customer_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_loyalty_entries_created_at",
        "loyalty_entries",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_loyalty_entries_idempotency_key",
        "loyalty_entries",
        ["tenant_id", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "loyalty_order_earns",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column(
            "base_fen",
            sa.BigInteger(),
            nullable=False,
            comment="Net paid amount the points were computed on.",
        ),
        sa.Column(
            "net_fen",
            sa.BigInteger(),
            nullable=False,
            comment="Paid minus refunded now; the spend that counts for tiers.",
        ),
        sa.Column("reversed_points", sa.BigInteger(), nullable=False),
        sa.Column("program_version", sa.Integer(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("post_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_entry_id", sa.UUID(), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'voided')",
            name=op.f("ck_loyalty_order_earns_status_known"),
        ),
        sa.CheckConstraint(
            "points >= 0 AND reversed_points >= 0",
            name=op.f("ck_loyalty_order_earns_points_not_negative"),
        ),
        sa.CheckConstraint(
            "reversed_points <= points", name=op.f("ck_loyalty_order_earns_reversed_within_earned")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "order_id", name=op.f("pk_loyalty_order_earns")),
    )
    op.create_index(
        "ix_loyalty_order_earns_customer",
        "loyalty_order_earns",
        ["tenant_id", "customer_id", "earned_at"],
        unique=False,
    )
    op.create_index(
        "ix_loyalty_order_earns_due",
        "loyalty_order_earns",
        ["tenant_id", "status", "post_at"],
        unique=False,
    )
    op.create_table(
        "loyalty_tier_changes",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("from_tier", sa.String(length=50), nullable=True),
        sa.Column("to_tier", sa.String(length=50), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["loyalty_accounts.tenant_id", "loyalty_accounts.customer_id"],
            name=op.f("fk_loyalty_tier_changes_tenant_id_customer_id_loyalty_accounts"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_loyalty_tier_changes")),
    )
    op.create_index(
        "ix_loyalty_tier_changes_account",
        "loyalty_tier_changes",
        ["tenant_id", "customer_id", "changed_at"],
        unique=False,
    )
    op.create_table(
        "loyalty_lots",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_loyalty_lots_points_positive")),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= points",
            name=op.f("ck_loyalty_lots_remaining_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "entry_id"],
            ["loyalty_entries.tenant_id", "loyalty_entries.id"],
            name=op.f("fk_loyalty_lots_tenant_id_entry_id_loyalty_entries"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_loyalty_lots")),
    )
    op.create_index(
        "ix_loyalty_lots_expiry",
        "loyalty_lots",
        ["tenant_id", "expires_at", "id"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_loyalty_lots_expiring",
        "loyalty_lots",
        ["tenant_id", "customer_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_loyalty_lots_fifo",
        "loyalty_lots",
        ["tenant_id", "customer_id", "earned_at", "id"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_table(
        "loyalty_lot_consumptions",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("lot_id", sa.UUID(), nullable=False),
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_loyalty_lot_consumptions_points_positive")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "entry_id"],
            ["loyalty_entries.tenant_id", "loyalty_entries.id"],
            name=op.f("fk_loyalty_lot_consumptions_tenant_id_entry_id_loyalty_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lot_id"],
            ["loyalty_lots.tenant_id", "loyalty_lots.id"],
            name=op.f("fk_loyalty_lot_consumptions_tenant_id_lot_id_loyalty_lots"),
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "lot_id", "entry_id", name=op.f("pk_loyalty_lot_consumptions")
        ),
    )
    op.create_index(
        "ix_loyalty_lot_consumptions_entry",
        "loyalty_lot_consumptions",
        ["tenant_id", "entry_id"],
        unique=False,
    )
    # The ledger's history is evidence: the database itself refuses to rewrite or erase it.
    op.execute(REFUSE_CHANGES)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION loyalty_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION loyalty_refuse_change()"
        )


def downgrade() -> None:
    op.drop_index("ix_loyalty_lot_consumptions_entry", table_name="loyalty_lot_consumptions")
    op.drop_table("loyalty_lot_consumptions")
    op.drop_index("ix_loyalty_lots_fifo", table_name="loyalty_lots")
    op.drop_index("ix_loyalty_lots_expiry", table_name="loyalty_lots")
    op.drop_index("ix_loyalty_lots_expiring", table_name="loyalty_lots")
    op.drop_table("loyalty_lots")
    op.drop_index("ix_loyalty_tier_changes_account", table_name="loyalty_tier_changes")
    op.drop_table("loyalty_tier_changes")
    op.drop_index("ix_loyalty_order_earns_due", table_name="loyalty_order_earns")
    op.drop_index("ix_loyalty_order_earns_customer", table_name="loyalty_order_earns")
    op.drop_table("loyalty_order_earns")
    op.drop_index("uq_loyalty_entries_idempotency_key", table_name="loyalty_entries")
    op.drop_index("ix_loyalty_entries_created_at", table_name="loyalty_entries")
    op.drop_index("ix_loyalty_entries_account", table_name="loyalty_entries")
    op.drop_table("loyalty_entries")
    op.drop_index("ix_loyalty_accounts_tier", table_name="loyalty_accounts")
    op.drop_table("loyalty_accounts")
    op.drop_index("ix_loyalty_programs_effective", table_name="loyalty_programs")
    op.drop_table("loyalty_programs")
    op.execute("DROP FUNCTION loyalty_refuse_change()")
