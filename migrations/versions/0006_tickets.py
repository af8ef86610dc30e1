"""tickets: staff, categories, SLA policies, settings, tickets, items, events, surveys, NPS

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-26 03:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_categories",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_categories_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "code", name=op.f("pk_ticket_categories")),
    )
    op.create_table(
        "ticket_settings",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("working_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("holidays", postgresql.ARRAY(sa.Date()), server_default="{}", nullable=False),
        sa.Column("workdays", postgresql.ARRAY(sa.Date()), server_default="{}", nullable=False),
        sa.Column("reopen_window_days", sa.Integer(), nullable=False),
        sa.Column("at_risk_minutes", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_ticket_settings")),
    )
    op.create_table(
        "ticket_sla_policies",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column("business_hours", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_sla_policies_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "priority", name=op.f("pk_ticket_sla_policies")),
    )
    op.create_table(
        "ticket_staff",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "api_key_id"],
            ["api_keys.tenant_id", "api_keys.id"],
            name=op.f("fk_ticket_staff_tenant_id_api_key_id_api_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_staff_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ticket_staff")),
        sa.UniqueConstraint(
            "tenant_id", "api_key_id", name=op.f("uq_ticket_staff_tenant_id_api_key_id")
        ),
    )
    op.create_table(
        "tickets",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("sla_business_hours", sa.Boolean(), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column(
            "clock_started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Start of the running resolution clock: creation, or the last reopen.",
        ),
        sa.Column(
            "paused_seconds",
            sa.BigInteger(),
            nullable=False,
            comment="Clock time spent pending since clock_started_at.",
        ),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_breached", sa.Boolean(), nullable=False),
        sa.Column("resolution_breached", sa.Boolean(), nullable=False),
        sa.Column("resolution_code", sa.String(length=50), nullable=True),
        sa.Column("resolution_summary", sa.Text(), nullable=True),
        sa.Column("compensation_points", sa.Integer(), nullable=True),
        sa.Column("compensation_fen", sa.BigInteger(), nullable=True),
        sa.Column("compensation_note", sa.Text(), nullable=True),
        sa.Column(
            "compensation_entry_id",
            sa.UUID(),
            nullable=True,
            comment="The loyalty ledger entry that paid compensation_points.",
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column(
            "csat_score",
            sa.SmallInteger(),
            nullable=True,
            comment="Copy of the CSAT answer, so reports need no join.",
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "assignee_id"],
            ["ticket_staff.tenant_id", "ticket_staff.id"],
            name=op.f("fk_tickets_tenant_id_assignee_id_ticket_staff"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "category"],
            ["ticket_categories.tenant_id", "ticket_categories.code"],
            name=op.f("fk_tickets_tenant_id_category_ticket_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_tickets_tenant_id_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"],
            ["orders.tenant_id", "orders.id"],
            name=op.f("fk_tickets_tenant_id_order_id_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tickets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_tickets")),
    )
    op.create_index(
        "ix_tickets_assignee", "tickets", ["tenant_id", "assignee_id", "id"], unique=False
    )
    op.create_index("ix_tickets_created_at", "tickets", ["tenant_id", "created_at"], unique=False)
    op.create_index(
        "ix_tickets_customer", "tickets", ["tenant_id", "customer_id", "id"], unique=False
    )
    op.create_index("ix_tickets_order", "tickets", ["tenant_id", "order_id"], unique=False)
    op.create_index(
        "ix_tickets_sla_queue",
        "tickets",
        ["tenant_id", "sla_due_at", "id"],
        unique=False,
        postgresql_where=sa.text("sla_due_at IS NOT NULL"),
    )
    op.create_index("ix_tickets_status", "tickets", ["tenant_id", "status", "id"], unique=False)
    op.create_table(
        "nps_responses",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_nps_responses_tenant_id_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_nps_responses_tenant_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_nps_responses")),
    )
    op.create_index(
        "ix_nps_responses_customer",
        "nps_responses",
        ["tenant_id", "customer_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_nps_responses_ticket", "nps_responses", ["tenant_id", "ticket_id"], unique=False
    )
    op.create_table(
        "ticket_events",
        sa.Column("ticket_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("actor_key_id", sa.UUID(), nullable=True),
        sa.Column("actor_staff_id", sa.UUID(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_ticket_events_tenant_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ticket_events")),
    )
    op.create_index(
        "ix_ticket_events_timeline", "ticket_events", ["tenant_id", "ticket_id", "id"], unique=False
    )
    op.create_table(
        "ticket_items",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id", "line_no"],
            ["order_items.tenant_id", "order_items.order_id", "order_items.line_no"],
            name=op.f("fk_ticket_items_tenant_id_order_id_line_no_order_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_ticket_items_tenant_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "ticket_id", "order_id", "line_no", name=op.f("pk_ticket_items")
        ),
    )
    op.create_index(
        "ix_ticket_items_order_item",
        "ticket_items",
        ["tenant_id", "order_id", "line_no"],
        unique=False,
    )
    op.create_table(
        "ticket_surveys",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_ticket_surveys_tenant_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id", name=op.f("pk_ticket_surveys")),
    )


def downgrade() -> None:
    op.drop_table("ticket_surveys")
    op.drop_index("ix_ticket_items_order_item", table_name="ticket_items")
    op.drop_table("ticket_items")
    op.drop_index("ix_ticket_events_timeline", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("ix_nps_responses_ticket", table_name="nps_responses")
    op.drop_index("ix_nps_responses_customer", table_name="nps_responses")
    op.drop_table("nps_responses")
    op.drop_index("ix_tickets_status", table_name="tickets")
    op.drop_index(
        "ix_tickets_sla_queue",
        table_name="tickets",
        postgresql_where=sa.text("sla_due_at IS NOT NULL"),
    )
    op.drop_index("ix_tickets_order", table_name="tickets")
    op.drop_index("ix_tickets_customer", table_name="tickets")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_index("ix_tickets_assignee", table_name="tickets")
    op.drop_table("tickets")
    op.drop_table("ticket_staff")
    op.drop_table("ticket_sla_policies")
    op.drop_table("ticket_settings")
    op.drop_table("ticket_categories")
