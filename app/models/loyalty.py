"""Loyalty ledger tables: program versions, accounts, append-only entries, lots and pending earns.

The entries table is append-only (a database trigger refuses UPDATE and DELETE); accounts carry
the running balance, locked per posting, and lots carry what is left of each credit for FIFO
spending and expiry. Consumption rows say which entry took how much from which lot.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, utcnow


class LoyaltyProgram(Base):
    """One version of a tenant's program settings; the latest with `effective_from <= now` rules."""

    __tablename__ = "loyalty_programs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("ix_loyalty_programs_effective", "tenant_id", "effective_from"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[datetime]
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)


class LoyaltyAccount(Base):
    """One per customer: the posted balance (equal to the sum of its entries) and the tier."""

    __tablename__ = "loyalty_accounts"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index("ix_loyalty_accounts_tier", "tenant_id", "tier"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_points: Mapped[int] = mapped_column(BigInteger, default=0)
    tier: Mapped[str | None] = mapped_column(String(50))
    tier_since: Mapped[datetime | None]
    merged_into: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)


class LoyaltyEntry(TenantMixin, Base):
    """An append-only posting: signed points, the balance it left, its source, actor and reason."""

    __tablename__ = "loyalty_entries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["loyalty_accounts.tenant_id", "loyalty_accounts.customer_id"],
        ),
        Index("uq_loyalty_entries_idempotency_key", "tenant_id", "idempotency_key", unique=True),
        Index("ix_loyalty_entries_account", "tenant_id", "customer_id", "seq"),
        Index("ix_loyalty_entries_created_at", "tenant_id", "created_at"),
        CheckConstraint(
            "(kind IN ('earn', 'bonus', 'referral') AND points > 0)"
            " OR (kind IN ('redeem', 'expire') AND points < 0)"
            " OR (kind = 'adjust' AND points <> 0)"
            " OR kind = 'reverse'",
            name="points_sign",
        ),
        CheckConstraint("kind <> 'redeem' OR balance_after >= 0", name="redeem_never_overdraws"),
        CheckConstraint("shortfall >= 0", name="shortfall_not_negative"),
    )

    customer_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(
        BigInteger,
        Identity(always=True),
        comment="Posting order: drawn at insert, under the account's lock, so an account's "
        "entries in seq order chain their balance_after (time-ordered ids from two processes "
        "in one millisecond need not).",
    )
    kind: Mapped[str] = mapped_column(String(20))
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    shortfall: Mapped[int] = mapped_column(
        BigInteger,
        default=0,
        comment="Points a reversal could not claw back because they were already spent.",
    )
    source_type: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[uuid.UUID | None]
    related_entry_id: Mapped[uuid.UUID | None] = mapped_column(
        comment="The entry this one reverses, or the other half of a merge pair."
    )
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class LoyaltyLot(TenantMixin, Base):
    """Points credited by one entry, with their expiry; `remaining` falls as lots are consumed."""

    __tablename__ = "loyalty_lots"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "entry_id"], ["loyalty_entries.tenant_id", "loyalty_entries.id"]
        ),
        # Partial: spent lots drop out, so FIFO and expiry never wade through an account's past.
        Index(
            "ix_loyalty_lots_fifo",
            "tenant_id",
            "customer_id",
            "earned_at",
            "id",
            postgresql_where=text("remaining > 0"),
        ),
        Index(
            "ix_loyalty_lots_expiring",
            "tenant_id",
            "customer_id",
            "expires_at",
            postgresql_where=text("remaining > 0"),
        ),
        Index(
            "ix_loyalty_lots_expiry",
            "tenant_id",
            "expires_at",
            "id",
            postgresql_where=text("remaining > 0"),
        ),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
    )

    customer_id: Mapped[uuid.UUID]
    entry_id: Mapped[uuid.UUID]
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class LoyaltyLotConsumption(Base):
    """How many points an entry took from a lot: one row per (lot, entry), append-only."""

    __tablename__ = "loyalty_lot_consumptions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "lot_id"], ["loyalty_lots.tenant_id", "loyalty_lots.id"]
        ),
        ForeignKeyConstraint(
            ["tenant_id", "entry_id"], ["loyalty_entries.tenant_id", "loyalty_entries.id"]
        ),
        Index("ix_loyalty_lot_consumptions_entry", "tenant_id", "entry_id"),
        CheckConstraint("points > 0", name="points_positive"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    lot_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)


class LoyaltyOrderEarn(Base):
    """An order's points: pending until its return window closes, then posted, or voided.

    One row per order, so an order can never earn twice whatever path or retry reports it.
    No foreign key to `orders`: rows are only ever derived from orders by the loader's hook, and
    a per-row key check doubled the cost of earning in a bulk load.
    """

    __tablename__ = "loyalty_order_earns"
    __table_args__ = (
        Index("ix_loyalty_order_earns_due", "tenant_id", "status", "post_at"),
        Index("ix_loyalty_order_earns_customer", "tenant_id", "customer_id", "earned_at"),
        CheckConstraint("status IN ('pending', 'posted', 'voided')", name="status_known"),
        CheckConstraint("points >= 0 AND reversed_points >= 0", name="points_not_negative"),
        CheckConstraint("reversed_points <= points", name="reversed_within_earned"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(BigInteger)
    base_fen: Mapped[int] = mapped_column(
        BigInteger, comment="Net paid amount the points were computed on."
    )
    net_fen: Mapped[int] = mapped_column(
        BigInteger, comment="Paid minus refunded now; the spend that counts for tiers."
    )
    reversed_points: Mapped[int] = mapped_column(BigInteger, default=0)
    program_version: Mapped[int] = mapped_column(Integer)
    earned_at: Mapped[datetime]
    post_at: Mapped[datetime | None]
    posted_entry_id: Mapped[uuid.UUID | None]
    voided_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class LoyaltyTierChange(TenantMixin, Base):
    """A tier change with its date and why (earn, reverse, schedule, program, merge)."""

    __tablename__ = "loyalty_tier_changes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["loyalty_accounts.tenant_id", "loyalty_accounts.customer_id"],
        ),
        Index("ix_loyalty_tier_changes_account", "tenant_id", "customer_id", "changed_at"),
    )

    customer_id: Mapped[uuid.UUID]
    from_tier: Mapped[str | None] = mapped_column(String(50))
    to_tier: Mapped[str | None] = mapped_column(String(50))
    changed_at: Mapped[datetime]
    cause: Mapped[str] = mapped_column(String(20))
