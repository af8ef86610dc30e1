"""Domain errors raised by services; one exception handler maps them to RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    """One problem with one input field; `loc` is the path to it (body, query, a file row...)."""

    loc: Sequence[str | int]
    msg: str
    type: str = "value_error"
    input: Any = None


@dataclass
class DomainError(Exception):
    """Base of every error a service may raise. `status` is the HTTP status it maps to."""

    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __str__(self) -> str:
        return self.detail


class NotFound(DomainError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class InvalidTransition(Conflict):
    title = "Invalid transition"
    slug = "invalid-transition"


class PermissionDenied(DomainError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class Unauthenticated(DomainError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition failed"
    slug = "precondition-failed"


class PreconditionRequired(DomainError):
    status = 428
    title = "Precondition required"
    slug = "precondition-required"


class ValidationFailed(DomainError):
    status = 422
    title = "Validation failed"
    slug = "validation-failed"


class PayloadTooLarge(DomainError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"
