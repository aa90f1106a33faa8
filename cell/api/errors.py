"""Every error leaves the API as JSON ``{"error": ..., "detail": ...}``, never a trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cell.errors import CellError, InvalidInput, NotAuthorized, Refused, Unavailable

log = logging.getLogger(__name__)

# The one mapping of the cell's errors to HTTP statuses.
STATUS: tuple[tuple[type[CellError], int], ...] = (
    (Refused, 409),
    (NotAuthorized, 401),
    (InvalidInput, 400),
    (Unavailable, 503),
)


def status_of(exc: CellError) -> int:
    """The HTTP status that answers ``exc`` (400 for a kind not listed)."""
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 400)


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse({"error": f"invalid request: {summary}", "detail": details}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(CellError)
    async def cell_error(_: Request, exc: CellError) -> JSONResponse:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status, headers=headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error; the server log has the details"}, 500)
