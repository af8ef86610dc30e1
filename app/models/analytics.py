"""Rollups the analytics endpoints read instead of orders, kept by the customer facts refresh.

`customer_months` holds, for each customer and each month (Asia/Shanghai) in which they bought,
their buying orders and what they paid less refunds: the cohort report reads a few rows per
buyer instead of every order. It is a pure function of the customer's orders, rewritten with
the customer's facts in the transaction that changed the orders (imports, order batches,
merges) and rebuilt with them by `kezhan facts rebuild`.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKeyConstraint, Integer
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
