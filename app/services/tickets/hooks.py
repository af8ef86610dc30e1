"""What other domains call when their data changes under tickets (customer merges)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import NpsResponse, Ticket, TicketEvent
from app.models.base import new_id
from app.services.identities import MERGE_HOOKS

MERGE_ACTOR = "customer merge"


async def customers_merged(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survivor_id: uuid.UUID,
    merged_id: uuid.UUID,
    now: datetime,
) -> None:
    """Move the merged customer's tickets and NPS answers to the survivor.

    Each moved ticket gets a `customer_merged` timeline event and a new version (its ETag
    changes). Call it inside the merge's transaction, before the merged customer is deleted
    (deleting a customer deletes its tickets). Running it twice moves nothing the second time.
    """
    moved = await session.scalars(
        update(Ticket)
        .where(Ticket.tenant_id == tenant_id, Ticket.customer_id == merged_id)
        .values(customer_id=survivor_id, version=Ticket.version + 1, updated_at=now)
        .returning(Ticket.id),
        execution_options={"synchronize_session": False},
    )
    data = {"from_customer_id": str(merged_id), "to_customer_id": str(survivor_id)}
    session.add_all(
        TicketEvent(
            tenant_id=tenant_id,
            id=new_id(),
            ticket_id=ticket_id,
            kind="customer_merged",
            actor_key_id=None,
            actor_staff_id=None,
            actor_name=MERGE_ACTOR,
            data=data,
            at=now,
        )
        for ticket_id in list(moved)
    )
    await session.execute(
        update(NpsResponse)
        .where(NpsResponse.tenant_id == tenant_id, NpsResponse.customer_id == merged_id)
        .values(customer_id=survivor_id),
        execution_options={"synchronize_session": False},
    )
    await session.flush()


if customers_merged not in MERGE_HOOKS:
    MERGE_HOOKS.append(customers_merged)
