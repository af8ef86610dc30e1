"""ticket rollups: per-day pre-aggregates for the summary report, and the dirty-hour trigger

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 04:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statement-level triggers with transition tables: one INSERT per statement, however many rows.
# created_at never changes, so the new rows name every hour an INSERT or UPDATE touches.
FUNCTION = """
CREATE FUNCTION ticket_rollups_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_rollup_dirty (tenant_id, hour)
    SELECT DISTINCT tenant_id, date_trunc('hour', created_at) FROM changed_rows;
    RETURN NULL;
END $$
"""

# Running clocks without a stored breach: the summary counts those past due live, index-only.
RUNNING_UNFLAGGED = (
    "sla_due_at IS NOT NULL AND NOT first_response_breached AND NOT resolution_breached"
)
RUNNING_INCLUDE = ["created_at", "kind", "category", "channel", "priority", "assignee_id"]

TRIGGERS = {
    "insert": "INSERT ON tickets REFERENCING NEW TABLE AS changed_rows",
    "update": "UPDATE ON tickets REFERENCING NEW TABLE AS changed_rows",
    "delete": "DELETE ON tickets REFERENCING OLD TABLE AS changed_rows",
}


def upgrade() -> None:
    op.create_table(
        "ticket_rollups",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("dimension", sa.String(length=20), nullable=False),
        sa.Column(
            "key",
            sa.String(length=64),
            nullable=False,
            comment="The group; '' when the ticket has none.",
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.Column(
            "breached",
            sa.Integer(),
            nullable=False,
            comment="Tickets with a stored breach flag (running clocks are added live).",
        ),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("ever_resolved", sa.Integer(), nullable=False),
        sa.Column("csat_sum", sa.BigInteger(), nullable=False),
        sa.Column("csat_count", sa.Integer(), nullable=False),
        sa.Column(
            "first_response_minutes",
            sa.LargeBinary(),
            nullable=False,
            comment="Sorted ascending, packed big-endian float8 (float8send).",
        ),
        sa.Column(
            "resolution_minutes",
            sa.LargeBinary(),
            nullable=False,
            comment="Sorted ascending, packed big-endian float8 (float8send).",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_rollups_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "dimension", "key", "day", name=op.f("pk_ticket_rollups")
        ),
    )
    op.create_table(
        "ticket_rollup_days",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_rollup_days_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_ticket_rollup_days")),
    )
    op.create_table(
        "ticket_rollup_dirty",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_rollup_dirty_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ticket_rollup_dirty")),
    )
    op.create_index(
        "ix_ticket_rollup_dirty_hour", "ticket_rollup_dirty", ["tenant_id", "hour"], unique=False
    )
    op.create_index(
        "ix_tickets_running_unflagged",
        "tickets",
        ["tenant_id", "sla_due_at"],
        unique=False,
        postgresql_include=RUNNING_INCLUDE,
        postgresql_where=sa.text(RUNNING_UNFLAGGED),
    )
    op.execute(FUNCTION)
    for name, event in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER ticket_rollups_{name} AFTER {event} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ticket_rollups_mark_dirty()"
        )
    # Tickets that exist already are dirty: the first job run builds their days.
    op.execute(
        "INSERT INTO ticket_rollup_dirty (tenant_id, hour) "
        "SELECT DISTINCT tenant_id, date_trunc('hour', created_at) FROM tickets"
    )


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER ticket_rollups_{name} ON tickets")
    op.execute("DROP FUNCTION ticket_rollups_mark_dirty()")
    op.drop_index(
        "ix_tickets_running_unflagged",
        table_name="tickets",
        postgresql_where=sa.text(RUNNING_UNFLAGGED),
    )
    op.drop_index("ix_ticket_rollup_dirty_hour", table_name="ticket_rollup_dirty")
    op.drop_table("ticket_rollup_dirty")
    op.drop_table("ticket_rollup_days")
    op.drop_table("ticket_rollups")
