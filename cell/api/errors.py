"""Every error leaves the API as JSON ``{"error": ..., "detail": ...}``, never a trace.

The one mapping of the cell's errors to HTTP statuses lives here, and so do the models of
the error bodies, so that the OpenAPI document shows the answers the API really gives
(``responses(...)`` for a route's or a router's ``responses=``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cell.errors import CellError, InvalidInput, NotAuthorized, Refused, Unavailable
from cell.record.users import LoginLocked

log = logging.getLogger(__name__)

# The one mapping of the cell's errors to HTTP statuses (first match wins).
STATUS: tuple[tuple[type[CellError], int], ...] = (
    (LoginLocked, 429),
    (Refused, 409),
    (NotAuthorized, 401),
    (InvalidInput, 400),
    (Unavailable, 503),
)

RECORD_DOWN = "the production record (PostgreSQL) cannot be reached; try again shortly"


class ErrorBody(BaseModel):
    """What every refusal carries: one sentence a person can act on."""

    error: str = Field(description="what is wrong and what to do")


class FieldProblem(BaseModel):
    field: str = Field(description="where: query.start, path.alert_id, reason, request, ...")
    message: str


class InvalidBody(BaseModel):
    """A request that does not parse: the summary and one entry per field."""

    error: str = Field(description="'invalid request: ' and the problems, one per field")
    detail: list[FieldProblem]


_WHY = {
    400: ("A body that is not JSON, or a query the record cannot answer", ErrorBody),
    401: ("No token, or a token that is unknown, expired or revoked", ErrorBody),
    403: ("The signed-in user's role is below the one this needs", ErrorBody),
    404: ("Nothing of that name on record", ErrorBody),
    409: ("An act the cell's rules refuse now; the error says why", ErrorBody),
    422: ("A malformed request: a field, a NUL character, a date out of range", InvalidBody),
    429: ("Too many failed sign-ins for this user or address; see Retry-After", ErrorBody),
    503: ("The production record cannot be reached", ErrorBody),
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error statuses ``codes`` with their body models."""
    return {code: {"description": _WHY[code][0], "model": _WHY[code][1]} for code in codes}


# What any route may answer besides its own success: the request's shape and the record.
COMMON = (422, 503)
READ = (*COMMON, 400, 401)
WRITE = (*COMMON, 400, 401, 403, 409)


def status_of(exc: CellError) -> int:
    """The HTTP status that answers ``exc`` (400 for a kind not listed)."""
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 400)


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "request"


def invalid_response(details: list[dict[str, str]]) -> JSONResponse:
    """The 422 answer for ``details`` (``field``, ``message`` each)."""
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return JSONResponse({"error": f"invalid request: {summary}", "detail": details}, 422)


def _unreachable(exc: Exception) -> bool:
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_response(
            [
                {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
                for e in exc.errors()
            ]
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(CellError)
    async def cell_error(_: Request, exc: CellError) -> JSONResponse:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, LoginLocked):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"error": str(exc)}, status, headers=headers)

    @app.exception_handler(DBAPIError)
    async def record_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if _unreachable(exc):
            log.warning("record unreachable on %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse({"error": RECORD_DOWN}, 503)
        return internal_error(request, exc)


def internal_error(request: Request | None, exc: BaseException) -> JSONResponse:
    """A bug: logged with its traceback, answered without one."""
    where = f"{request.method} {request.url.path}" if request is not None else "a request"
    log.error("unhandled error on %s", where, exc_info=exc)
    return JSONResponse({"error": "internal error; the server log has the details"}, 500)
