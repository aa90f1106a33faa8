"""``create_app(settings)``: the HTTP API (OpenAPI at /docs), its web pages and /metrics.

The engine is built in the lifespan from the settings and disposed at shutdown; nothing
is created at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import generate_latest

from cell.api import errors
from cell.api.routes_acts import router as acts
from cell.api.routes_analytics import router as analytics
from cell.api.settings import ApiSettings
from cell.insight.metrics import record_registry
from cell.record.engine import make_engine, make_sessionmaker
from cell.web import pages


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
        "roster, alerts. Writes need a token with the right role.",
    )
    app.state.settings = settings
    errors.install(app)
    app.include_router(analytics)
    app.include_router(acts)

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["meta"], include_in_schema=False)
    def metrics() -> Response:
        return Response(
            generate_latest(app.state.metrics),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    pages.install(app)
    return app
