"""Customer profile, identity and interaction requests and responses."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from app.schemas.common import Schema
from app.schemas.shops import Platform


class Gender(StrEnum):
    male = "male"
    female = "female"
    unknown = "unknown"


class AddressIn(Schema):
    label: str | None = Field(default=None, max_length=50, examples=["家"])
    receiver_name: str | None = Field(default=None, max_length=100, examples=["张三"])
    phone: str | None = Field(default=None, examples=["13812345678"])
    province: str | None = Field(default=None, max_length=50, examples=["浙江省"])
    city: str | None = Field(default=None, max_length=50, examples=["杭州市"])
    district: str | None = Field(default=None, max_length=50, examples=["西湖区"])
    street: str | None = Field(default=None, max_length=300, examples=["文三路 100 号 3 幢 201"])
    postal_code: str | None = Field(default=None, max_length=10, examples=["310012"])
    is_default: bool = False


class AddressOut(Schema):
    id: uuid.UUID
    label: str | None
    receiver_name: str | None
    phone: str | None
    province: str | None
    city: str | None
    district: str | None
    street: str | None
    postal_code: str | None
    is_default: bool


class IdentityIn(Schema):
    platform: Platform = Field(examples=["tmall"])
    shop_id: uuid.UUID | None = Field(
        default=None, description="Set when the key is only unique within one shop."
    )
    buyer_key: str = Field(
        min_length=1,
        max_length=200,
        description="How the channel knows the buyer: nickname, member card, buyer id.",
        examples=["tb0363247856"],
    )


class IdentityOut(Schema):
    id: uuid.UUID
    platform: Platform
    shop_id: uuid.UUID | None
    buyer_key: str
    created_at: datetime


class CustomerBase(Schema):
    display_name: str | None = Field(default=None, max_length=200, examples=["小王"])
    gender: Gender | None = None
    birthday: date | None = Field(default=None, examples=["1990-05-20"])
    province: str | None = Field(default=None, max_length=50, examples=["浙江省"])
    city: str | None = Field(default=None, max_length=50, examples=["杭州市"])
    district: str | None = Field(default=None, max_length=50, examples=["西湖区"])


Tag = str


class CustomerCreate(CustomerBase):
    phones: list[str] = Field(default_factory=list, max_length=20, examples=[["13812345678"]])
    emails: list[str] = Field(default_factory=list, max_length=20, examples=[["wang@example.com"]])
    addresses: list[AddressIn] = Field(default_factory=list, max_length=20)
    tags: list[Tag] = Field(default_factory=list, max_length=100, examples=[["vip"]])
    attributes: dict[str, Any] = Field(default_factory=dict, examples=[{"source": "门店"}])
    identities: list[IdentityIn] = Field(default_factory=list, max_length=50)


class CustomerUpdate(CustomerBase):
    """Fields present replace the stored ones; lists are replaced whole."""

    phones: list[str] | None = Field(default=None, max_length=20)
    emails: list[str] | None = Field(default=None, max_length=20)
    addresses: list[AddressIn] | None = Field(default=None, max_length=20)
    tags: list[Tag] | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] | None = None


class CustomerOut(CustomerBase):
    id: uuid.UUID
    phones: list[str]
    emails: list[str]
    addresses: list[AddressOut]
    tags: list[str]
    attributes: dict[str, Any]
    identities: list[IdentityOut]
    personal_data: Literal["masked", "clear"] = Field(
        description="`masked` unless the key's role may see personal data (owner, admin)."
    )
    created_at: datetime
    updated_at: datetime


class TagsIn(Schema):
    tags: list[Tag] = Field(min_length=1, max_length=100, examples=[["vip", "回购"]])


class InteractionKind(StrEnum):
    note = "note"
    call = "call"
    chat = "chat"
    visit = "visit"
    sms = "sms"
    email = "email"


class InteractionCreate(Schema):
    kind: InteractionKind = Field(examples=["call"])
    channel: str | None = Field(default=None, max_length=50, examples=["phone"])
    content: str = Field(min_length=1, max_length=10_000, examples=["回访：对物流满意"])
    actor: str | None = Field(
        default=None, max_length=200, description="Who did it; defaults to the API key's name."
    )
    occurred_at: datetime | None = Field(default=None, description="Defaults to now.")


class InteractionOut(Schema):
    id: uuid.UUID
    customer_id: uuid.UUID
    kind: InteractionKind
    channel: str | None
    content: str
    actor: str | None
    occurred_at: datetime
    created_at: datetime


class RevealRequest(Schema):
    fields: list[Literal["phones", "emails", "addresses"]] = Field(
        default=["phones", "emails", "addresses"], min_length=1
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Why, kept in the audit record."
    )


class RevealOut(Schema):
    customer_id: uuid.UUID
    phones: list[str] | None = None
    emails: list[str] | None = None
    addresses: list[AddressOut] | None = None
