"""Customer profiles: create, read (masked by role), update, tag, look up and list."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    JSON,
    Select,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Vault
from app.db import driver_of
from app.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.models import Customer, CustomerAddress, CustomerContact, CustomerIdentity, Shop
from app.models.base import new_id, utcnow
from app.schemas.customers import (
    AddressIn,
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    IdentityIn,
)
from app.services import pii
from app.services.auth import Principal
from app.services.paging import check_if_match, cursor_id, encode_cursor


@dataclass(frozen=True)
class CustomerRecord:
    profile: CustomerOut
    version: int


@dataclass(frozen=True)
class CustomerFilters:
    name_prefix: str | None = None
    phone: str | None = None
    tag: str | None = None
    platform: str | None = None
    buyer_key: str | None = None
    province: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


# --- reading -------------------------------------------------------------------------------

_c = Customer.__table__.c
_cc = CustomerContact.__table__.c
_ca = CustomerAddress.__table__.c
_ci = CustomerIdentity.__table__.c


def _json_list(query: Select[Any]) -> Any:
    return type_coerce(func.coalesce(query.scalar_subquery(), literal_column("'[]'::json")), JSON)


def _b64(column: Any) -> Any:
    return func.encode(column, "base64")


_CONTACTS = _json_list(
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_object(
                    "kind", _cc.kind, "masked", _cc.masked, "enc", _b64(_cc.value_enc)
                ),
                _cc.kind,
                _cc.position,
            )
        )
    ).where(_cc.tenant_id == _c.tenant_id, _cc.customer_id == _c.id)
)
_ADDRESSES = _json_list(
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_object(
                    "id", _ca.id,
                    "label", _ca.label,
                    "receiver_name_masked", _ca.receiver_name_masked,
                    "receiver_name_enc", _b64(_ca.receiver_name_enc),
                    "phone_masked", _ca.phone_masked,
                    "phone_enc", _b64(_ca.phone_enc),
                    "province", _ca.province,
                    "city", _ca.city,
                    "district", _ca.district,
                    "street_masked", _ca.street_masked,
                    "street_enc", _b64(_ca.street_enc),
                    "postal_code", _ca.postal_code,
                    "is_default", _ca.is_default,
                ),
                _ca.position,
            )
        )
    ).where(_ca.tenant_id == _c.tenant_id, _ca.customer_id == _c.id)
)  # fmt: skip
_IDENTITIES = _json_list(
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_object(
                    "id", _ci.id,
                    "platform", _ci.platform,
                    "shop_id", _ci.shop_id,
                    "buyer_key", _ci.buyer_key,
                    "created_at", _ci.created_at,
                ),
                _ci.id,
            )
        )
    ).where(_ci.tenant_id == _c.tenant_id, _ci.customer_id == _c.id)
)  # fmt: skip

_PROFILE = select(
    Customer.__table__,
    _CONTACTS.label("contacts"),
    _ADDRESSES.label("addresses"),
    _IDENTITIES.label("identities"),
).where(_c.merged_into_id.is_(None))  # merged-away customers are kept only for other history
# The single-profile read is the API's hottest path: its SQL is compiled once and sent straight
# to asyncpg (a prepared statement per connection), skipping SQLAlchemy's per-call statement
# caching and result processing, which cost more than the query itself (docs/benchmarks.md).
_ONE_PROFILE = _PROFILE.where(
    _c.tenant_id == bindparam("tenant_id"), _c.id == bindparam("customer_id")
).compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
_ONE_PROFILE_ARGS = [_ONE_PROFILE.params.get(name) for name in _ONE_PROFILE.positiontup or ()]
_ONE_PROFILE_TENANT = (_ONE_PROFILE.positiontup or []).index("tenant_id")
_ONE_PROFILE_CUSTOMER = (_ONE_PROFILE.positiontup or []).index("customer_id")


def profile_statement(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> tuple[str, list[Any]]:
    """The one-profile read as asyncpg SQL and arguments (the benchmark's baseline sends it too)."""
    args = list(_ONE_PROFILE_ARGS)
    args[_ONE_PROFILE_TENANT], args[_ONE_PROFILE_CUSTOMER] = tenant_id, customer_id
    return _ONE_PROFILE.string, args


async def _fetch_profile(
    db: AsyncSession | asyncpg.Pool, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> asyncpg.Record | None:
    source = await driver_of(db) if isinstance(db, AsyncSession) else db
    sql, args = profile_statement(tenant_id, customer_id)
    return await source.fetchrow(sql, *args)


class _Decoder:
    """Turns stored personal data into what this caller may see."""

    def __init__(self, vault: Vault, tenant_id: uuid.UUID, clear: bool) -> None:
        self.vault, self.tenant_id, self.clear = vault, tenant_id, clear

    def value(self, masked: str | None, enc_b64: str | None) -> str | None:
        if masked is None:
            return None
        if not self.clear or enc_b64 is None:
            return masked
        return self.vault.decrypt(self.tenant_id, base64.b64decode(enc_b64))

    def address(self, a: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": a["id"],
            "label": a["label"],
            "receiver_name": self.value(a["receiver_name_masked"], a["receiver_name_enc"]),
            "phone": self.value(a["phone_masked"], a["phone_enc"]),
            "province": a["province"],
            "city": a["city"],
            "district": a["district"],
            "street": self.value(a["street_masked"], a["street_enc"]),
            "postal_code": a["postal_code"],
            "is_default": a["is_default"],
        }


def _to_record(row: asyncpg.Record | RowMapping, decoder: _Decoder) -> CustomerRecord:
    # One validation of plain data: pydantic-core builds the nested models in one pass, a third
    # of the cost of constructing each address and identity model from Python.
    contacts = row["contacts"]
    profile = CustomerOut.model_validate(
        {
            "id": row["id"],
            "display_name": row["display_name"],
            "gender": row["gender"],
            "birthday": row["birthday"],
            "province": row["province"],
            "city": row["city"],
            "district": row["district"],
            "phones": [
                decoder.value(c["masked"], c["enc"]) or "" for c in contacts if c["kind"] == "phone"
            ],
            "emails": [
                decoder.value(c["masked"], c["enc"]) or "" for c in contacts if c["kind"] == "email"
            ],
            "addresses": [decoder.address(a) for a in row["addresses"]],
            "tags": row["tags"],
            "attributes": row["attributes"],
            "identities": row["identities"],
            "personal_data": "clear" if decoder.clear else "masked",
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )
    return CustomerRecord(profile, row["version"])


def _decoder(vault: Vault, actor: Principal, clear: bool | None = None) -> _Decoder:
    return _Decoder(vault, actor.tenant_id, actor.can("pii:unmasked") if clear is None else clear)


async def get_customer(
    db: AsyncSession | asyncpg.Pool,
    vault: Vault,
    actor: Principal,
    customer_id: uuid.UUID,
    clear: bool | None = None,
) -> CustomerRecord:
    actor.require("customers:read")
    row = await _fetch_profile(db, actor.tenant_id, customer_id)
    if row is None:
        raise NotFound("no such customer")
    return _to_record(row, _decoder(vault, actor, clear))


async def list_customers(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    filters: CustomerFilters,
    limit: int,
    cursor: str | None,
) -> tuple[list[CustomerRecord], str | None]:
    """Newest first, keyed on the time-ordered id: inserts never shift later pages."""
    actor.require("customers:read")
    query = _PROFILE.where(_c.tenant_id == actor.tenant_id)
    for condition in _filter_conditions(vault, actor.tenant_id, filters):
        query = query.where(condition)
    if cursor:
        query = query.where(_c.id < cursor_id(cursor))
    rows = (await session.execute(query.order_by(_c.id.desc()).limit(limit + 1))).all()
    decoder = _decoder(vault, actor)
    records = [_to_record(row._mapping, decoder) for row in rows[:limit]]
    more = len(rows) > limit
    return records, encode_cursor({"id": str(records[-1].profile.id)}) if more else None


def _filter_conditions(vault: Vault, tenant_id: uuid.UUID, f: CustomerFilters) -> list[Any]:
    conditions: list[Any] = []
    if f.name_prefix:
        escaped = f.name_prefix.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        conditions.append(_c.display_name.like(escaped + "%"))
    if f.phone:
        phone = pii.normalize_phone(f.phone, ["query", "phone"])
        conditions.append(
            exists().where(
                _cc.tenant_id == tenant_id,
                _cc.kind == "phone",
                _cc.value_hash == vault.lookup_hash(tenant_id, "phone", phone),
                _cc.customer_id == _c.id,
            )
        )
    if f.tag:
        conditions.append(_c.tags.contains([f.tag]))
    if f.platform or f.buyer_key:
        identity = [_ci.tenant_id == tenant_id, _ci.customer_id == _c.id]
        if f.platform:
            identity.append(_ci.platform == f.platform)
        if f.buyer_key:
            identity.append(_ci.buyer_key == f.buyer_key)
        conditions.append(exists().where(*identity))
    if f.province:
        conditions.append(_c.province == f.province)
    if f.created_after:
        conditions.append(_c.created_at >= f.created_after)
    if f.created_before:
        conditions.append(_c.created_at < f.created_before)
    return conditions


async def lookup_by_identity(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    platform: str,
    buyer_key: str,
    shop_id: uuid.UUID | None,
) -> CustomerRecord:
    actor.require("customers:read")
    customer_id = await session.scalar(
        select(_ci.customer_id).where(
            _ci.tenant_id == actor.tenant_id,
            _ci.platform == platform,
            _ci.buyer_key == buyer_key,
            _ci.shop_id.is_not_distinct_from(shop_id),
        )
    )
    if customer_id is None:
        raise NotFound(f"no customer has the {platform} identity {buyer_key!r}")
    return await get_customer(session, vault, actor, customer_id)


# --- writing -------------------------------------------------------------------------------


def _contacts(
    vault: Vault, tenant_id: uuid.UUID, customer_id: uuid.UUID, phones: list[str], emails: list[str]
) -> list[CustomerContact]:
    rows: list[CustomerContact] = []
    normalized: list[tuple[str, str]] = [
        ("phone", pii.normalize_phone(p, ["body", "phones", i])) for i, p in enumerate(phones)
    ] + [("email", pii.normalize_email(e, ["body", "emails", i])) for i, e in enumerate(emails)]
    seen: set[tuple[str, str]] = set()
    for kind, value in normalized:
        if (kind, value) in seen:
            continue
        seen.add((kind, value))
        rows.append(
            CustomerContact(
                tenant_id=tenant_id,
                id=new_id(),
                customer_id=customer_id,
                kind=kind,
                position=len(rows),
                value_enc=vault.encrypt(tenant_id, value),
                value_hash=vault.lookup_hash(tenant_id, kind, value),
                masked=pii.mask_phone(value) if kind == "phone" else pii.mask_email(value),
            )
        )
    return rows


def _address(
    vault: Vault, tenant_id: uuid.UUID, customer_id: uuid.UUID, position: int, a: AddressIn
) -> CustomerAddress:
    phone = (
        pii.normalize_phone(a.phone, ["body", "addresses", position, "phone"]) if a.phone else None
    )
    name = a.receiver_name.strip() if a.receiver_name else None
    street = a.street.strip() if a.street else None
    return CustomerAddress(
        tenant_id=tenant_id,
        id=new_id(),
        customer_id=customer_id,
        position=position,
        label=a.label,
        receiver_name_enc=vault.encrypt(tenant_id, name) if name else None,
        receiver_name_masked=pii.mask_name(name) if name else None,
        phone_enc=vault.encrypt(tenant_id, phone) if phone else None,
        phone_hash=vault.lookup_hash(tenant_id, "phone", phone) if phone else None,
        phone_masked=pii.mask_phone(phone) if phone else None,
        province=a.province,
        city=a.city,
        district=a.district,
        street_enc=vault.encrypt(tenant_id, street) if street else None,
        street_masked=pii.mask_street(street) if street else None,
        postal_code=a.postal_code,
        is_default=a.is_default,
    )


def _clean_tags(tags: Sequence[str], loc: list[str | int]) -> list[str]:
    cleaned: list[str] = []
    for i, tag in enumerate(tags):
        value = tag.strip()
        if not value or len(value) > 50:
            raise ValidationFailed(
                "invalid tag", [FieldError([*loc, i], "tags are 1 to 50 characters", input=tag)]
            )
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


async def _check_identities(
    session: AsyncSession, tenant_id: uuid.UUID, identities: Sequence[IdentityIn]
) -> None:
    keys = [(i.platform.value, i.shop_id, i.buyer_key) for i in identities]
    for index, key in enumerate(keys):
        if key in keys[:index]:
            raise ValidationFailed(
                "duplicate identity",
                [FieldError(["body", "identities", index], "listed twice in this request")],
            )
    for index, (platform, shop_id, buyer_key) in enumerate(keys):
        if shop_id is not None and await session.get(Shop, (tenant_id, shop_id)) is None:
            raise ValidationFailed(
                "unknown shop",
                [FieldError(["body", "identities", index, "shop_id"], "no such shop")],
            )
        owner = await session.scalar(
            select(_ci.customer_id).where(
                _ci.tenant_id == tenant_id,
                _ci.platform == platform,
                _ci.shop_id.is_not_distinct_from(shop_id),
                _ci.buyer_key == buyer_key,
            )
        )
        if owner is not None:
            raise Conflict(
                f"the {platform} identity {buyer_key!r} already belongs to another customer",
                extra={"customer_id": str(owner)},
            )


def _identity_rows(
    tenant_id: uuid.UUID, customer_id: uuid.UUID, identities: Sequence[IdentityIn]
) -> list[CustomerIdentity]:
    return [
        CustomerIdentity(
            tenant_id=tenant_id,
            id=new_id(),
            customer_id=customer_id,
            platform=i.platform.value,
            shop_id=i.shop_id,
            buyer_key=i.buyer_key,
            created_at=utcnow(),
        )
        for i in identities
    ]


async def create_customer(
    session: AsyncSession, vault: Vault, actor: Principal, data: CustomerCreate
) -> CustomerRecord:
    actor.require("customers:write")
    tenant_id, customer_id = actor.tenant_id, new_id()
    contacts = _contacts(vault, tenant_id, customer_id, data.phones, data.emails)
    addresses = [
        _address(vault, tenant_id, customer_id, i, a) for i, a in enumerate(data.addresses)
    ]
    tags = _clean_tags(data.tags, ["body", "tags"])
    await _check_identities(session, tenant_id, data.identities)
    now = utcnow()
    session.add(
        Customer(
            tenant_id=tenant_id,
            id=customer_id,
            display_name=data.display_name,
            gender=data.gender,
            birthday=data.birthday,
            province=data.province,
            city=data.city,
            district=data.district,
            tags=tags,
            attributes=data.attributes,
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    session.add_all(
        [*contacts, *addresses, *_identity_rows(tenant_id, customer_id, data.identities)]
    )
    await session.flush()
    return await get_customer(session, vault, actor, customer_id)


async def _lock(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> Customer:
    customer = await session.get(Customer, (tenant_id, customer_id), with_for_update=True)
    if customer is None or customer.merged_into_id is not None:
        raise NotFound("no such customer")
    return customer


def _touch(customer: Customer) -> None:
    customer.version += 1
    customer.updated_at = utcnow()


async def update_customer(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    customer_id: uuid.UUID,
    data: CustomerUpdate,
    if_match: str | None,
) -> CustomerRecord:
    actor.require("customers:write")
    tenant_id = actor.tenant_id
    customer = await _lock(session, tenant_id, customer_id)
    check_if_match(if_match, customer.version)
    changes = data.model_dump(exclude_unset=True)
    phones, emails = changes.pop("phones", None), changes.pop("emails", None)
    if phones is not None or emails is not None:
        current = await _current_contacts(session, vault, tenant_id, customer_id)
        new_rows = _contacts(
            vault,
            tenant_id,
            customer_id,
            phones if phones is not None else current["phone"],
            emails if emails is not None else current["email"],
        )
        await session.execute(
            delete(CustomerContact).where(
                CustomerContact.tenant_id == tenant_id, CustomerContact.customer_id == customer_id
            )
        )
        session.add_all(new_rows)
    if changes.pop("addresses", None) is not None:
        assert data.addresses is not None
        rows = [_address(vault, tenant_id, customer_id, i, a) for i, a in enumerate(data.addresses)]
        await session.execute(
            delete(CustomerAddress).where(
                CustomerAddress.tenant_id == tenant_id, CustomerAddress.customer_id == customer_id
            )
        )
        session.add_all(rows)
    if "tags" in changes:
        changes["tags"] = _clean_tags(changes["tags"] or [], ["body", "tags"])
    if changes.get("attributes") is None:
        changes.pop("attributes", None)
    for name, value in changes.items():
        setattr(customer, name, value)
    _touch(customer)
    await session.flush()
    return await get_customer(session, vault, actor, customer_id)


async def _current_contacts(
    session: AsyncSession, vault: Vault, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> dict[str, list[str]]:
    rows = await session.execute(
        select(_cc.kind, _cc.value_enc)
        .where(_cc.tenant_id == tenant_id, _cc.customer_id == customer_id)
        .order_by(_cc.position)
    )
    current: dict[str, list[str]] = {"phone": [], "email": []}
    for kind, enc in rows:
        current[kind].append(vault.decrypt(tenant_id, enc))
    return current


async def add_tags(
    session: AsyncSession, vault: Vault, actor: Principal, customer_id: uuid.UUID, tags: list[str]
) -> CustomerRecord:
    actor.require("customers:write")
    customer = await _lock(session, actor.tenant_id, customer_id)
    merged = _clean_tags([*customer.tags, *tags], ["body", "tags"])
    if merged != customer.tags:
        customer.tags = merged
        _touch(customer)
        await session.flush()
    return await get_customer(session, vault, actor, customer_id)


async def remove_tag(
    session: AsyncSession, vault: Vault, actor: Principal, customer_id: uuid.UUID, tag: str
) -> CustomerRecord:
    actor.require("customers:write")
    customer = await _lock(session, actor.tenant_id, customer_id)
    if tag in customer.tags:
        customer.tags = [t for t in customer.tags if t != tag]
        _touch(customer)
        await session.flush()
    return await get_customer(session, vault, actor, customer_id)


async def add_identity(
    session: AsyncSession, vault: Vault, actor: Principal, customer_id: uuid.UUID, data: IdentityIn
) -> CustomerRecord:
    actor.require("customers:write")
    customer = await _lock(session, actor.tenant_id, customer_id)
    await _check_identities(session, actor.tenant_id, [data])
    session.add_all(_identity_rows(actor.tenant_id, customer_id, [data]))
    _touch(customer)
    await session.flush()
    return await get_customer(session, vault, actor, customer_id)


async def remove_identity(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    customer_id: uuid.UUID,
    identity_id: uuid.UUID,
) -> CustomerRecord:
    actor.require("customers:write")
    customer = await _lock(session, actor.tenant_id, customer_id)
    removed = await session.execute(
        delete(CustomerIdentity)
        .where(
            CustomerIdentity.tenant_id == actor.tenant_id,
            CustomerIdentity.customer_id == customer_id,
            CustomerIdentity.id == identity_id,
        )
        .returning(CustomerIdentity.id)
    )
    if removed.first() is None:
        raise NotFound("this customer has no such identity")
    _touch(customer)
    await session.flush()
    return await get_customer(session, vault, actor, customer_id)


async def ensure_body_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> None:
    """422 pointing at `customer_id` unless a customer named in a request body exists here."""
    try:
        await ensure_customer(session, tenant_id, customer_id)
    except NotFound as exc:
        raise ValidationFailed(
            "unknown customer", [FieldError(["body", "customer_id"], "no such customer")]
        ) from exc


async def ensure_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> None:
    """404 unless the customer exists in this tenant."""
    found = await session.scalar(
        select(_c.id).where(
            _c.tenant_id == tenant_id, _c.id == customer_id, _c.merged_into_id.is_(None)
        )
    )
    if found is None:
        raise NotFound("no such customer")
