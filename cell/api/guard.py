"""The outer guard of every request: Host check, input PostgreSQL cannot store, security
headers, and a last answer for bugs.

A pure ASGI middleware (it never buffers a body, so the live page's event stream passes
through untouched):

* a ``Host`` the settings do not allow is refused with 400 before anything else runs:
  a page elsewhere whose name was made to resolve to this server (DNS rebinding) gets
  nothing;
* a NUL character in the path or in a query name or value is a 422 naming where it is
  (PostgreSQL text cannot hold NUL, and no id or filter of ours contains one); JSON
  bodies are checked by their models (``cell.api.bodies``);
* every answer carries ``Content-Security-Policy`` (scripts only from this server or
  with the request's nonce, no framing), ``X-Frame-Options``, ``X-Content-Type-Options``
  and ``Referrer-Policy``; API answers are not cached;
* an exception nothing else handled is logged and answered with a 500 JSON body here,
  so the server does not reset the client's keep-alive connection as it would when an
  error escapes the application.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cell.api.errors import internal_error, invalid_response
from cell.api.settings import ApiSettings

log = logging.getLogger(__name__)

NONCE_KEY = "csp_nonce"


def csp(nonce: str) -> str:
    """The Content-Security-Policy of every answer (``nonce``: this request's scripts)."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        # Swagger UI sets style attributes; styles cannot run code.
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


def host_name(header: str) -> str:
    """The name in a ``Host`` header without its port (``[::1]:8470`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


def nul_problems(scope: Scope) -> list[dict[str, str]]:
    """Where the path or the query string of ``scope`` carries a NUL character."""
    problems = []
    if "\x00" in scope.get("path", ""):
        problems.append({"field": "path", "message": "must not contain a NUL character"})
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if "\x00" in name or "\x00" in value:
            where = name.replace("\x00", "\\x00")
            problems.append(
                {"field": f"query.{where}", "message": "must not contain a NUL character"}
            )
    return problems


class Guard:
    """Wraps the application; see the module's docstring."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})[NONCE_KEY] = nonce
        secured = _secured(send, nonce, api=scope.get("path", "").startswith("/api/"))
        host = Headers(scope=scope).get("host", "")
        if not self.settings.host_allowed(host_name(host)):
            shown = host[:80]
            answer = JSONResponse(
                {
                    "error": f"this server does not answer for host {shown!r}; add it to "
                    "INTERN_API_ALLOWED_HOSTS"
                },
                400,
            )
            await answer(scope, receive, secured)
            return
        problems = nul_problems(scope)
        if problems:
            await invalid_response(problems)(scope, receive, secured)
            return
        await self._run(scope, receive, secured)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if not started:
                await internal_error(None, exc)(scope, receive, send)
                return
            # Too late for a status: end the body so the connection stays usable.
            log.error("error after the answer started on %s", scope.get("path"), exc_info=exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _secured(send: Send, nonce: str, *, api: bool) -> Send:
    async def with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["Content-Security-Policy"] = csp(nonce)
            headers["X-Frame-Options"] = "DENY"
            headers["X-Content-Type-Options"] = "nosniff"
            headers["Referrer-Policy"] = "no-referrer"
            if api and "cache-control" not in headers:
                headers["Cache-Control"] = "no-store"
        await send(message)

    return with_headers
