"""Routes with a fixed input plan, served without FastAPI's per-request dependency solver.

FastAPI solves each route's dependency tree on every request: for every dependency it walks the
tree, builds the query, header and cookie views and runs its generic parameter extraction, even
when the dependency only wants the `Request`. On a one-row read that machinery was about a
fifth of the server's CPU (docs/benchmarks.md, "Customer read").

`LeanRoute` is the route class of every router. At start-up it looks at the route's inputs;
when each dependency is an `async def` taking only the `Request` (no sub-dependencies, no
`yield`), every other parameter is a path parameter, and the endpoint returns a `Response`
itself, the plan is fixed: call the dependencies in order with the request, validate the path
parameters with FastAPI's own validators (the same errors, so the same 422 problem), call the
endpoint and send its response. Errors raised on the way reach the app's exception handlers
exactly as from FastAPI's handler. Any other route, and any app with dependency overrides,
keeps FastAPI's handler. The route, its signature and its OpenAPI operation are unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_typed_return_annotation, get_validation_alias
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

_SPECIAL_INPUTS = (
    "websocket_param_name",
    "http_connection_param_name",
    "response_param_name",
    "background_tasks_param_name",
    "security_scopes_param_name",
)


@dataclass(frozen=True)
class _Plan:
    dependencies: list[tuple[str, Callable[..., Awaitable[Any]], str | None]]
    request_param: str | None  # the endpoint's own `Request` parameter, if it has one


def _only_request(dependant: Dependant) -> bool:
    """No query, header, cookie or body input, and no special parameter but the request."""
    return not (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or any(getattr(dependant, name) for name in _SPECIAL_INPUTS)
    )


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    annotation = get_typed_return_annotation(endpoint)
    return isinstance(annotation, type) and issubclass(annotation, Response)


def _plan(route: APIRoute) -> _Plan | None:
    endpoint = route.dependant
    if not (
        endpoint.is_coroutine_callable
        and not endpoint.is_gen_callable
        and not endpoint.is_async_gen_callable
        and _only_request(endpoint)
        and _returns_response(route.endpoint)
    ):
        return None
    dependencies = []
    for dependency in endpoint.dependencies:
        if not (
            dependency.name is not None
            and dependency.call is not None
            and dependency.is_coroutine_callable
            and not dependency.is_gen_callable
            and not dependency.is_async_gen_callable
            and not dependency.dependencies
            and not dependency.path_params
            and not dependency.oauth_scopes
            and _only_request(dependency)
        ):
            return None
        dependencies.append((dependency.name, dependency.call, dependency.request_param_name))
    return _Plan(dependencies, endpoint.request_param_name)


class LeanRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.fastapi_app = self.app  # FastAPI's own handler, kept for dependency overrides
        plan = _plan(self)
        self.lean = plan is not None
        if plan is not None:
            self.app = self._lean_app(plan)

    def _lean_app(self, plan: _Plan) -> ASGIApp:
        call = self.dependant.call
        assert call is not None
        # (field, its name in the path, the endpoint's parameter): a matched route always has
        # every path parameter, as text, so each is one validation with FastAPI's own field.
        path_params = [
            (field, get_validation_alias(field), field.name) for field in self.dependant.path_params
        ]
        overrides = self.dependency_overrides_provider

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                await self.fastapi_app(scope, receive, send)
                return
            request = Request(scope, receive, send)
            values: dict[str, Any] = {}
            for name, dependency, request_param in plan.dependencies:
                values[name] = await (
                    dependency(**{request_param: request}) if request_param else dependency()
                )
            received = scope["path_params"]
            errors: list[Any] = []
            for field, alias, name in path_params:
                values[name], field_errors = field.validate(
                    received[alias], values, loc=("path", alias)
                )
                errors += field_errors
            if errors:
                raise RequestValidationError(errors)
            if plan.request_param:
                values[plan.request_param] = request
            response: Response = await call(**values)
            await response(scope, receive, send)

        return app
