"""Opaque cursors for keyset pagination, and `If-Match` checks for optimistic concurrency."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from app.errors import FieldError, PreconditionFailed, ValidationFailed


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(values, dict):
            raise ValueError
        return values
    except ValueError as exc:
        raise ValidationFailed(
            "invalid cursor",
            [FieldError(["query", "cursor"], "use the next_cursor of a previous page")],
        ) from exc


def cursor_values(cursor: str, *keys: str) -> list[str]:
    """The named values of a cursor, or a 422 when the cursor was not one of ours."""
    values = decode_cursor(cursor)
    if not all(isinstance(values.get(k), str) for k in keys):
        raise ValidationFailed(
            "invalid cursor",
            [FieldError(["query", "cursor"], "use the next_cursor of a previous page")],
        )
    return [values[k] for k in keys]


def cursor_id(cursor: str) -> uuid.UUID:
    (value,) = cursor_values(cursor, "id")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValidationFailed(
            "invalid cursor",
            [FieldError(["query", "cursor"], "use the next_cursor of a previous page")],
        ) from exc


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """No header: last write wins. A header that names no current version: 412."""
    if if_match is None:
        return
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" in tags or etag(version) in tags:
        return
    raise PreconditionFailed(
        "the resource changed since you read it: fetch it again and retry with its new ETag",
        extra={"current_etag": etag(version)},
    )
