"""Per-tenant, per-day pre-aggregates of tickets for the summary report.

`ticket_rollups` holds, for each local day (tenant time zone) and each report dimension, the
additive counts and the sorted first-response and resolution minutes of the day's tickets
(packed float8s, so a year of them is read without a Python object per value in the driver).
`ticket_rollup_days` says which days are built and in which time zone. A trigger on `tickets`
appends the hour of every inserted, updated or deleted ticket's creation to
`ticket_rollup_dirty` in the writing transaction; a day with a dirty hour is read from
`tickets` until the job rebuilds it, so reports never depend on the job's lag.
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
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE")


class TicketRollup(Base):
    """One local day's tickets in one group of one dimension (`all` has the key '')."""

    __tablename__ = "ticket_rollups"
    __table_args__ = (_tenant_fk(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(
        String(64), primary_key=True, comment="The group; '' when the ticket has none."
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer)
    breached: Mapped[int] = mapped_column(
        Integer, comment="Tickets with a stored breach flag (running clocks are added live)."
    )
    reopened: Mapped[int] = mapped_column(Integer)
    ever_resolved: Mapped[int] = mapped_column(Integer)
    csat_sum: Mapped[int] = mapped_column(BigInteger)
    csat_count: Mapped[int] = mapped_column(Integer)
    first_response_minutes: Mapped[bytes] = mapped_column(
        LargeBinary, comment="Sorted ascending, packed big-endian float8 (float8send)."
    )
    resolution_minutes: Mapped[bytes] = mapped_column(
        LargeBinary, comment="Sorted ascending, packed big-endian float8 (float8send)."
    )


class TicketRollupDay(Base):
    """A built local day and the time zone it was built in."""

    __tablename__ = "ticket_rollup_days"
    __table_args__ = (_tenant_fk(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[datetime]


class TicketRollupDirty(Base):
    """An hour (UTC, truncated) in which tickets were created that changed since the last build."""

    __tablename__ = "ticket_rollup_dirty"
    __table_args__ = (
        _tenant_fk(),
        Index("ix_ticket_rollup_dirty_hour", "tenant_id", "hour"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    hour: Mapped[datetime]
