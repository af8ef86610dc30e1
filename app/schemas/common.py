"""Shapes shared by every domain: cursor pages and the pagination query parameters."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (max 500).")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` from the previous page; omit for the first.")
]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")
