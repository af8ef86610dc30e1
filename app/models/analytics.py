"""Rollups the analytics endpoints read instead of orders, kept by the customer facts refresh.

`customer_months` holds, for each customer and each month (Asia/Shanghai) in which they bought,
their buying orders and what they paid less refunds, and the customer's first buying payment:
the cohort report reads the rows of a period's new buyers by that time instead of every order.
It is a pure function of the customer's orders, rewritten with the customer's facts in the
transaction that changed the orders (imports, order batches, merges) and rebuilt with them by
`kezhan facts rebuild`.

`customer_rollups` holds the tenant's live customers (not merged away) counted by province,
city, RFM scores, RFM group and lifecycle stage, with how many of them bought and what they
spent: geography, the RFM grid, stage counts and the overview's totals are sums over a few
hundred rows instead of joins of a million. Triggers on `customers`, `customer_facts` and
`customer_scores` append the change of every statement as delta rows (one per key touched), so
writers never wait on each other; `compact_rollups` folds a tenant's rows into one per key.
The sum of a key's rows is always exact (migration 0013, docs/segments.md).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class CustomerMonth(Base):
    __tablename__ = "customer_months"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        # The cohort report reads a period's new buyers' months from the index alone.
        Index(
            "ix_customer_months_first_paid",
            "tenant_id",
            "first_paid_at",
            postgresql_include=["month", "revenue_fen"],
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(
        Date, primary_key=True, comment="First day of the month (Asia/Shanghai)."
    )
    orders: Mapped[int] = mapped_column(Integer, comment="Buying orders paid in the month.")
    revenue_fen: Mapped[int] = mapped_column(
        BigInteger, comment="Paid less refunded, of those orders."
    )
    first_paid_at: Mapped[datetime] = mapped_column(
        comment="The customer's first buying payment (its cohort): facts.first_order_at."
    )


class CustomerRollup(Base):
    __tablename__ = "customer_rollups"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    rfm_r: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_f: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_group: Mapped[str | None] = mapped_column(String(30))
    stage: Mapped[str] = mapped_column(String(20))
    customers: Mapped[int] = mapped_column(BigInteger, comment="Live customers (a delta).")
    buyers: Mapped[int] = mapped_column(BigInteger, comment="Of them, with a buying order.")
    spent_fen: Mapped[int] = mapped_column(BigInteger, comment="Their total spent.")


class CustomerChange(Base):
    """One row per statement that wrote a tenant's customers, facts or scores (a trigger's,
    migration 0015): the sum of `statements` tells the API's in-memory customer frames whether
    they are still current (app/services/segments/member_frames.py)."""

    __tablename__ = "customer_changes"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    statements: Mapped[int] = mapped_column(
        BigInteger,
        server_default="1",
        comment="Statements this row stands for (more than one after compaction).",
    )
