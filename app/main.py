"""The app factory: settings, lifespan (database, vault, key cache), routers, errors, docs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app import problems
from app.config import Settings, get_settings
from app.crypto import Vault, load_keys
from app.db import create_engine, create_read_pool, create_sessionmaker, libpq_url
from app.jobs import build_job_app, worker_options
from app.middleware import RequestContext, configure_logging
from app.migrate import ensure_at_head
from app.models.base import utcnow
from app.openapi_security import declare_bearer_security
from app.routers import ROUTERS
from app.runtime import Clock, Runtime
from app.services.auth import KeyVerifier
from app.services.segments.member_frames import MemberFrames

DESCRIPTION = """
Kezhan (客栈) keeps a marketplace seller's customers in one place: profiles across Tmall,
Taobao, Pinduoduo, offline and O2O stores, with personal data encrypted and masked by role.

Authenticate with `Authorization: Bearer <api key>` (the **Authorize** button). Errors are
RFC 9457 `application/problem+json`; lists use cursor pagination (`limit`, `cursor`).
"""

_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    url = await asyncio.to_thread(libpq_url, settings)
    engine = create_engine(url, settings)
    try:
        await ensure_at_head(engine)
        job_app = build_job_app(url)
        read_pool = await create_read_pool(url, settings)
        async with read_pool, job_app.open_async():
            runtime = Runtime(
                settings=settings,
                database_url=url,
                engine=engine,
                sessions=create_sessionmaker(engine),
                read_sessions=create_sessionmaker(
                    engine.execution_options(isolation_level="AUTOCOMMIT")
                ),
                read_pool=read_pool,
                vault=Vault(load_keys(settings)),
                keys=KeyVerifier(engine, settings.api_key_cache_seconds),
                clock=app.state.clock,
                jobs=job_app,
                member_frames=MemberFrames(
                    url,
                    settings.segment_frames_min_customers,
                    settings.segment_frames_max_customers,
                ),
            )
            app.state.runtime = runtime
            worker = (
                asyncio.create_task(job_app.run_worker_async(**worker_options(runtime)))
                if settings.job_worker_in_process
                else None
            )
            try:
                yield
            finally:
                await runtime.member_frames.close()
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
    finally:
        await engine.dispose()


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from an installed package: no CDN, works behind any firewall."""
    app.mount("/docs-assets", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Kezhan API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="Kezhan API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


def create_app(settings: Settings | None = None, clock: Clock = utcnow) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="Kezhan",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    problems.install(app)
    # The routers' routes go straight into the app's table (their prefixes and tags are already
    # in each route): `include_router` wraps each router in a lazy branch that is walked twice
    # per request, 8% of a one-row read's CPU (docs/benchmarks.md).
    for router in ROUTERS:
        app.router.routes.extend(router.routes)
    _offline_docs(app)
    declare_bearer_security(app)
    app.add_middleware(RequestContext)
    return app
