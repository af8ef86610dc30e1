"""Join the domain branches (order sync, segments, loyalty, tickets) into one history

Each domain's tables were written as its own revision off 0002 at the same time; from here the
history is linear again.

Revision ID: 0008
Revises: 0003, 0004, 0005, 0007
Create Date: 2026-11-26 05:00:00.000000+00:00
"""

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | Sequence[str] | None = ("0003", "0004", "0005", "0007")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the branches touch separate tables."""


def downgrade() -> None:
    """Nothing to change: downgrading past here splits the history into its branches again."""
