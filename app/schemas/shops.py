"""Shop requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from app.schemas.common import Schema


class Platform(StrEnum):
    tmall = "tmall"
    taobao = "taobao"
    pinduoduo = "pinduoduo"
    jd = "jd"
    douyin = "douyin"
    offline = "offline"
    o2o = "o2o"
    group_buy = "group_buy"
    other = "other"


class ShopCreate(Schema):
    platform: Platform = Field(examples=["tmall"])
    name: str = Field(min_length=1, max_length=200, examples=["天猫旗舰店"])
    external_id: str | None = Field(
        default=None, max_length=100, description="The platform's shop id.", examples=["57301"]
    )


class ShopUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    external_id: str | None = Field(default=None, max_length=100)


class ShopOut(Schema):
    id: uuid.UUID
    platform: Platform
    name: str
    external_id: str | None
    created_at: datetime
    updated_at: datetime
