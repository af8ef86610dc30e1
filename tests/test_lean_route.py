"""Routes served by `LeanRoute`'s fixed plan answer exactly as FastAPI's own handler does."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request, Response

from app.lean_route import LeanRoute
from tests.factories import TenantCtx, TenantFactory


def _route(app: FastAPI, path: str, method: str) -> LeanRoute:
    [route] = [
        r
        for r in app.routes
        if isinstance(r, LeanRoute) and r.path == path and method in (r.methods or ())
    ]
    return route


def test_only_routes_with_a_fixed_plan_are_lean(app: FastAPI) -> None:
    lean = {
        (method, r.path)
        for r in app.routes
        if isinstance(r, LeanRoute) and r.lean
        for method in r.methods or ()
    }
    assert ("GET", "/api/v1/customers/{customer_id}") in lean
    assert ("GET", "/readyz") in lean
    # Query parameters, bodies, generator (session) dependencies and model returns keep
    # FastAPI's handler.
    assert ("GET", "/api/v1/customers") not in lean
    assert ("PATCH", "/api/v1/customers/{customer_id}") not in lean
    assert ("GET", "/api/v1/customers/{customer_id}/interactions") not in lean


# Endpoints for the plan's rules (module level: their annotations must resolve).
async def needs_request(request: Request) -> str:
    return request.url.path


async def session_like(request: Request) -> Any:
    yield request


async def with_generator(
    value: Annotated[Any, Depends(session_like)], customer_id: uuid.UUID
) -> Response:
    return Response()


async def returns_dict(customer_id: uuid.UUID) -> dict[str, str]:
    return {}


async def with_query(customer_id: uuid.UUID, limit: int = 10) -> Response:
    return Response()


async def lean_endpoint(
    value: Annotated[str, Depends(needs_request)], customer_id: uuid.UUID
) -> Response:
    return Response(value)


def test_the_plan_needs_request_only_dependencies_and_a_response() -> None:
    assert LeanRoute("/x/{customer_id}", lean_endpoint).lean
    assert not LeanRoute("/x/{customer_id}", returns_dict).lean
    assert not LeanRoute("/x/{customer_id}", with_query).lean
    assert not LeanRoute("/x/{customer_id}", with_generator).lean


async def _answer(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    response = await client.get(url, headers=headers)
    kept = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
    return response.status_code, kept, response.content


async def test_a_lean_route_answers_like_fastapi_would(
    app: FastAPI, client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    tenant: TenantCtx = await tenants.create()
    other = await tenants.create()
    customer = await tenant.customer(display_name="张三丰", emails=["zs@example.com"], tags=["vip"])
    url = f"/api/v1/customers/{customer['id']}"
    cases = [
        (url, tenant.headers()),  # owner: clear personal data
        (url, await tenant.key("analyst")),  # masked
        (url, {}),  # no key: 401
        (url, {"Authorization": "Bearer kz_wrong"}),  # bad key: 401
        (url, {"Authorization": "Basic abc"}),  # wrong scheme: 401
        (url, other.headers()),  # another tenant's customer: 404
        (f"/api/v1/customers/{uuid.uuid4()}", tenant.headers()),  # unknown: 404
        ("/api/v1/customers/not-a-uuid", tenant.headers()),  # 422 naming path.customer_id
        ("/api/v1/customers/not-a-uuid", {}),  # the key is checked first: 401
        ("/readyz", {}),
    ]
    lean = [await _answer(client, u, h) for u, h in cases]
    route, ready = (
        _route(app, "/api/v1/customers/{customer_id}", "GET"),
        _route(app, "/readyz", "GET"),
    )
    lean_apps = route.app, ready.app
    route.app, ready.app = route.fastapi_app, ready.fastapi_app
    try:
        generic = [await _answer(client, u, h) for u, h in cases]
    finally:
        route.app, ready.app = lean_apps
    assert lean == generic
    statuses = [status for status, _, _ in lean]
    assert statuses == [200, 200, 401, 401, 401, 404, 404, 422, 401, 200]
