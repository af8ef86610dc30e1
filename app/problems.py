"""RFC 9457 problem+json for every error: domain errors, validation, integrity and HTTP errors."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://kezhan.dev/problems/"


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    errors = [
        {"loc": list(e.loc), "msg": e.msg, "type": e.type}
        | ({"input": e.input} if e.input is not None else {})
        for e in exc.errors
    ]
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem(request, exc.status, exc.title, exc.detail, exc.slug, errors, exc.extra, headers)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        | ({"input": _jsonable(e["input"])} if "input" in e and e["loc"][0] != "body" else {})
        for e in exc.errors()
    ]
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
    return problem(
        request, 422, "Validation failed", f"invalid input: {fields}", "validation-failed", errors
    )


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntegrityError)
    log.info("integrity error: %s", exc.orig)
    return problem(
        request,
        409,
        "Conflict",
        "this conflicts with data that already exists (a unique value is taken)",
        "conflict",
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return problem(
        request,
        exc.status_code,
        title,
        str(exc.detail),
        slug,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(
        request, 500, "Internal error", "something went wrong on our side", "internal-error"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's error responses, all problem+json."""
    described = {
        400: "Bad request",
        401: "Missing or invalid API key",
        403: "The key's role may not do this",
        404: "Not found (or another tenant's)",
        409: "Conflict with the current state",
        412: "`If-Match` does not match the current `ETag`",
        413: "Upload too large",
        422: "Invalid input; `errors[].loc` points at each bad field",
        428: "`If-Match` is required",
    }
    return {
        status: {
            "description": described[status],
            "content": {
                PROBLEM_JSON: {
                    "example": {
                        "type": TYPE_BASE + "example",
                        "title": described[status],
                        "status": status,
                        "detail": "what went wrong and what to do",
                        "instance": "/api/v1/...",
                    }
                }
            },
        }
        for status in statuses
    }
