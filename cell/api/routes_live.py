"""The live line: every station now (``GET /api/live``), and the same as a stream of
server-sent events (``GET /api/live/events``) for the live page.

The stream sends the line as one ``data:`` JSON event whenever it differs from the last
one sent, checking every ``POLL_S``: a change in the record or the broker reaches an open
page within a second. All open streams of one API process share one snapshot per
``POLL_S`` (``LiveCache``), so ten open pages cost the record what one does. A stream ends
after ``STREAM_S`` (the page reconnects at once and gets the line again), so a server that
is stopping is held up by an open page for that long at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from cell.api.deps import Reader
from cell.api.errors import READ, responses
from cell.insight.live import LineNow, line_now

router = APIRouter(prefix="/api", tags=["live"], responses=responses(*READ))

POLL_S = 0.5
# Short: a stopping server waits for open streams (uvicorn lets responses finish), and
# the page reconnects at once, on the same keep-alive connection.
STREAM_S = 10.0
KEEPALIVE_S = 15.0


class LiveCache:
    """The latest snapshot of the line, taken at most once per ``POLL_S``."""

    def __init__(self, request: Request) -> None:
        self.sessions = request.app.state.sessions
        self.redis_url = request.app.state.settings.redis_url
        self._lock = asyncio.Lock()
        self._at = 0.0
        self._now: LineNow | None = None

    @classmethod
    def of(cls, request: Request) -> LiveCache:
        cache = getattr(request.app.state, "live_cache", None)
        if cache is None:
            cache = request.app.state.live_cache = cls(request)
        return cache

    async def now(self) -> LineNow:
        async with self._lock:
            if self._now is None or time.monotonic() - self._at >= POLL_S * 0.8:
                self._now = await asyncio.to_thread(self._take)
                self._at = time.monotonic()
            return self._now

    def _take(self) -> LineNow:
        with self.sessions() as s:
            return line_now(s, self.redis_url)


@router.get("/live")
async def live(request: Request, _: Reader) -> LineNow:
    """Every station now: PackML state and reason, robot and whether its worker is
    online, PLC connection and heartbeat, the running job, last results, open alerts."""
    return await LiveCache.of(request).now()


async def _events(request: Request) -> AsyncIterator[str]:
    cache = LiveCache.of(request)
    yield "retry: 1000\n\n"
    last, sent_at, end = "", time.monotonic(), time.monotonic() + STREAM_S
    while time.monotonic() < end and not await request.is_disconnected():
        now = await cache.now()
        body = now.model_dump_json(exclude={"at"})
        if body != last:
            last, sent_at = body, time.monotonic()
            yield f"event: line\ndata: {now.model_dump_json()}\n\n"
        elif time.monotonic() - sent_at > KEEPALIVE_S:
            sent_at = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


@router.get(
    "/live/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "line events"}},
)
async def live_events(request: Request, _: Reader) -> StreamingResponse:
    """Server-sent events: ``event: line`` with the ``/api/live`` body whenever it
    changes. Read it with a token where reads need one (``fetch`` and a stream reader;
    the browser's ``EventSource`` cannot send the Authorization header)."""
    return StreamingResponse(
        _events(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
