"""Audit trail responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.schemas.common import Schema


class AuditEventOut(Schema):
    id: uuid.UUID
    api_key_id: uuid.UUID | None
    role: str | None
    action: str
    resource_type: str
    resource_id: uuid.UUID | None
    fields: list[str]
    request_id: str | None
    details: dict[str, Any]
    at: datetime
