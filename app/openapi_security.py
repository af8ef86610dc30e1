"""The API-key security scheme in the OpenAPI document (the docs' **Authorize** button).

`deps.current_key` reads the `Authorization` header itself, so FastAPI cannot see the scheme;
this states it once, on exactly the operations whose dependencies include that function.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.deps import current_key

SCHEME = "HTTPBearer"
_DEFINITION = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `Authorization: Bearer kz_...`",
}


def _needs_key(dependant: Dependant) -> bool:
    return any(d.call is current_key or _needs_key(d) for d in dependant.dependencies)


def declare_bearer_security(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # cached by FastAPI in app.openapi_schema; completed in place
        schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = _DEFINITION
        for route in app.routes:
            if (
                isinstance(route, APIRoute)
                and route.include_in_schema
                and _needs_key(route.dependant)
            ):
                operations = schema["paths"][route.path_format]
                for method in route.methods or ():
                    operations[method.lower()]["security"] = [{SCHEME: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
