"""Customer profile endpoints: profiles, tags, identities, timeline and audited reveal."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import ClockDep, CurrentKey, IfMatch, ReadPool, ReadSession, Session, VaultDep
from app.lean_route import LeanRoute
from app.middleware import request_id_var
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.customers import (
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    IdentityIn,
    InteractionCreate,
    InteractionOut,
    RevealOut,
    RevealRequest,
    TagsIn,
)
from app.schemas.shops import Platform
from app.services import customers, interactions, privacy
from app.services.customers import CustomerFilters, CustomerRecord
from app.services.paging import etag

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/customers", tags=["customers"])


def _with_etag(record: CustomerRecord, response: Response) -> CustomerOut:
    response.headers["ETag"] = etag(record.version)
    return record.profile


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer profile",
    responses=responses(401, 403, 409, 422),
)
async def create_customer(
    session: Session, vault: VaultDep, actor: CurrentKey, body: CustomerCreate, response: Response
) -> CustomerOut:
    record = await customers.create_customer(session, vault, actor, body)
    response.headers["Location"] = f"/api/v1/customers/{record.profile.id}"
    return _with_etag(record, response)


@router.get(
    "",
    summary="Find customers (newest first) by name prefix, phone, tag, identity, province, date",
    responses=responses(401, 403, 422),
)
async def list_customers(
    session: ReadSession,
    vault: VaultDep,
    actor: CurrentKey,
    name: Annotated[str | None, Query(description="Display name starts with this.")] = None,
    phone: Annotated[str | None, Query(description="Exact phone number (any format).")] = None,
    tag: Annotated[str | None, Query(description="Has this tag.")] = None,
    platform: Annotated[Platform | None, Query(description="Has an identity here.")] = None,
    buyer_key: Annotated[str | None, Query(description="Has this identity key.")] = None,
    province: Annotated[str | None, Query()] = None,
    created_after: Annotated[datetime | None, Query(description="Inclusive.")] = None,
    created_before: Annotated[datetime | None, Query(description="Exclusive.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CustomerOut]:
    filters = CustomerFilters(
        name_prefix=name,
        phone=phone,
        tag=tag,
        platform=platform.value if platform else None,
        buyer_key=buyer_key,
        province=province,
        created_after=created_after,
        created_before=created_before,
    )
    records, next_cursor = await customers.list_customers(
        session, vault, actor, filters, limit, cursor
    )
    return Page(items=[r.profile for r in records], next_cursor=next_cursor)


@router.get(
    "/lookup",
    summary="Find the customer behind a channel identity (platform + buyer key)",
    responses=responses(401, 403, 404, 422),
)
async def lookup_customer(
    session: ReadSession,
    vault: VaultDep,
    actor: CurrentKey,
    platform: Platform,
    buyer_key: str,
    response: Response,
    shop_id: uuid.UUID | None = None,
) -> CustomerOut:
    record = await customers.lookup_by_identity(
        session, vault, actor, platform.value, buyer_key, shop_id
    )
    return _with_etag(record, response)


@router.get(
    "/{customer_id}",
    summary="Get a customer",
    response_model=CustomerOut,
    responses=responses(401, 403, 404),
)
async def get_customer(
    db: ReadPool, vault: VaultDep, actor: CurrentKey, customer_id: uuid.UUID
) -> Response:
    # The profile is already a validated model: serialise it once, straight to the response.
    record = await customers.get_customer(db, vault, actor, customer_id)
    return Response(
        record.profile.model_dump_json(),
        media_type="application/json",
        headers={"ETag": etag(record.version)},
    )


@router.patch(
    "/{customer_id}",
    summary="Update a customer; send `If-Match` with the ETag you read to avoid lost updates",
    responses=responses(401, 403, 404, 412, 422),
)
async def update_customer(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    body: CustomerUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerOut:
    record = await customers.update_customer(session, vault, actor, customer_id, body, if_match)
    return _with_etag(record, response)


@router.post(
    "/{customer_id}/tags",
    summary="Add tags (existing ones are kept)",
    responses=responses(401, 403, 404, 422),
)
async def add_tags(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    body: TagsIn,
    response: Response,
) -> CustomerOut:
    record = await customers.add_tags(session, vault, actor, customer_id, body.tags)
    return _with_etag(record, response)


@router.delete(
    "/{customer_id}/tags/{tag}", summary="Remove a tag", responses=responses(401, 403, 404)
)
async def remove_tag(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    tag: str,
    response: Response,
) -> CustomerOut:
    record = await customers.remove_tag(session, vault, actor, customer_id, tag)
    return _with_etag(record, response)


@router.post(
    "/{customer_id}/identities",
    status_code=status.HTTP_201_CREATED,
    summary="Attach a channel identity (each identity belongs to one customer)",
    responses=responses(401, 403, 404, 409, 422),
)
async def add_identity(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    body: IdentityIn,
    response: Response,
) -> CustomerOut:
    record = await customers.add_identity(session, vault, actor, customer_id, body)
    return _with_etag(record, response)


@router.delete(
    "/{customer_id}/identities/{identity_id}",
    summary="Detach a channel identity",
    responses=responses(401, 403, 404),
)
async def remove_identity(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    identity_id: uuid.UUID,
    response: Response,
) -> CustomerOut:
    record = await customers.remove_identity(session, vault, actor, customer_id, identity_id)
    return _with_etag(record, response)


@router.post(
    "/{customer_id}/interactions",
    status_code=status.HTTP_201_CREATED,
    summary="Record a note, call, chat, visit, SMS or email on the customer's timeline",
    responses=responses(401, 403, 404, 422),
)
async def add_interaction(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    customer_id: uuid.UUID,
    body: InteractionCreate,
) -> InteractionOut:
    interaction = await interactions.add_interaction(session, actor, customer_id, body, clock())
    return InteractionOut.model_validate(interaction)


@router.get(
    "/{customer_id}/interactions",
    summary="The customer's timeline, most recent first",
    responses=responses(401, 403, 404, 422),
)
async def list_interactions(
    session: ReadSession,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[InteractionOut]:
    rows, next_cursor = await interactions.list_interactions(
        session, actor, customer_id, limit, cursor
    )
    return Page(items=[InteractionOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/{customer_id}/reveal",
    summary="Reveal personal data in clear; every call is written to the audit trail",
    responses=responses(401, 403, 404, 422),
)
async def reveal_customer(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    body: RevealRequest | None = None,
) -> RevealOut:
    request = body or RevealRequest()
    return await privacy.reveal_customer(
        session, vault, actor, customer_id, request.fields, request.reason, request_id_var.get()
    )
