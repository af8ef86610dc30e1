"""API key requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.schemas.common import Schema
from app.services.auth import Role


class ApiKeyCreate(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["Tmall import script"])
    role: Role = Field(examples=["importer"])


class ApiKeyOut(Schema):
    id: uuid.UUID
    name: str
    role: Role
    hint: str = Field(description="The last four characters of the secret, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret, shown only in this response: store it now.")
