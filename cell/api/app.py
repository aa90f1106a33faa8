"""``create_app(settings)``: the HTTP API, its web pages, its own API docs and /metrics.

The engine is built in the lifespan from the settings and disposed at shutdown; nothing
is created at import time. ``/docs`` is Swagger UI served from the ``swagger-ui-bundle``
package's files (no CDN: it works on a plant network without internet), and ``/docs``,
``/openapi.json`` and ``/metrics`` need a token exactly when the API's reads do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest

from cell.api import errors
from cell.api.deps import Reader
from cell.api.guard import Guard
from cell.api.routes_acts import router as acts
from cell.api.routes_analytics import router as analytics
from cell.api.routes_jobs import router as jobs
from cell.api.routes_live import router as live
from cell.api.routes_rollouts import router as rollouts
from cell.api.settings import ApiSettings
from cell.insight.metrics import record_registry
from cell.record.engine import make_engine, make_sessionmaker
from cell.web import pages

SWAGGER_ASSETS = "/static/swagger-ui"

DOCS_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>intern-cells API</title>
<link rel="stylesheet" href="{SWAGGER_ASSETS}/swagger-ui.css">
<link rel="icon" href="{SWAGGER_ASSETS}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_ASSETS}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>"""


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.sessions = make_sessionmaker(engine)
        app.state.metrics = record_registry(app.state.sessions, settings.redis_url)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="intern-cells",
        version="0.1.0",
        lifespan=lifespan,
        description="Production record of humanoid robot cells: yield, SPC, OEE, "
        "roster, alerts, the live line. Writes need a token with the right role; reads "
        "too when the server is not on loopback.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    errors.install(app)
    app.include_router(analytics)
    app.include_router(acts)
    app.include_router(jobs)
    app.include_router(live)
    app.include_router(rollouts)

    @app.get("/api/health", tags=["meta"], responses=errors.responses(*errors.COMMON))
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics(_: Reader) -> Response:
        return Response(
            generate_latest(app.state.metrics),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Reader) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_: Reader) -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    app.mount(
        SWAGGER_ASSETS,
        StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path)),
        name="swagger-ui",
    )
    pages.install(app)
    app.add_middleware(Guard, settings=settings)
    return app
