"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import RuntimeDep
from app.lean_route import LeanRoute
from app.migrate import current_revisions, head_revisions

router = APIRouter(route_class=LeanRoute, tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and its schema is at the code's migration head",
    responses={503: {"description": "Not ready; `detail` says why"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    try:
        current = await current_revisions(runtime.engine)
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
    expected = head_revisions()
    if current != expected:
        return JSONResponse(
            {
                "status": "unavailable",
                "detail": f"schema at {sorted(current)}, code needs {sorted(expected)}",
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "schema": sorted(current)})
