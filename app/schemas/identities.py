"""Merge suggestions and customer merges."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.schemas.common import Schema


class MergeSuggestionOut(Schema):
    id: uuid.UUID
    customer_id: uuid.UUID
    other_customer_id: uuid.UUID
    status: str = Field(description="`open` or `dismissed`.")
    evidence: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None


class MergeRequest(Schema):
    other_customer_id: uuid.UUID = Field(
        description="The customer merged into this one; it is deleted afterwards."
    )


class MergeOut(Schema):
    customer_id: uuid.UUID
    merged_customer_id: uuid.UUID
    moved: dict[str, int]
