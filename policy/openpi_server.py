"""The policy server over openpi's websocket protocol, for any client that speaks it.

What crosses the connection is ``policy.openpi_schema``'s maps in ``policy.openpi_codec``'s
msgpack: on connect the server sends its metadata, then answers each observation with
an action chunk; a request it cannot answer gets a text message saying why, and the
connection stays open. ``GET /healthz`` answers ``OK`` (no token needed: it says only
that the server is up).

The limits are ``policy.server.ServerConfig``'s, as on our own wire. The token travels in
the opening handshake's ``Authorization`` header, as ``Bearer <token>`` or, as
openpi-client's ``api_key`` sends it, ``Api-Key <token>``; it is checked before the
connection is upgraded, so no message is read from a client without it. Until then a
connection may send at most ``max_unauthenticated_bytes`` (the HTTP request) within
``auth_timeout_s``. A connection over ``max_connections`` is answered ``503`` at once and
nothing it sends is kept. Messages are at most ``policy.wire.MAX_FRAME_BYTES``.

Imports websockets, numpy, msgpack and pydantic; never torch.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from typing import ClassVar

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from policy.base import PolicyError
from policy.openpi_codec import packb, unpackb
from policy.openpi_schema import metadata, parse_request, reply_message
from policy.server import LINGER_S, ConnectionGate, InferenceSlot, ServerConfig, ServerStats
from policy.wire import MAX_FRAME_BYTES, WireError
from robot.chunk_policy import ChunkPolicy

log = logging.getLogger(__name__)

AUTH_SCHEMES = ("Bearer", "Api-Key")


def bearer_token(header: str | None) -> str | None:
    """The token in an ``Authorization`` header of one of ``AUTH_SCHEMES``, else None."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme not in AUTH_SCHEMES or not value.strip():
        return None
    return value.strip()


class _GatedConnection(ServerConnection):
    """A connection counted against the owner's cap, whose bytes before the upgrade are
    limited; one over the cap or over the limit is answered in plain HTTP and ignored."""

    owner: ClassVar[OpenpiServer]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.upgraded = False
        self.refused = False
        self.unauthenticated_bytes = 0
        self.admitted = self.owner.gate.admit()
        if not self.admitted:
            self.owner.stats.refused_connections += 1

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # discarded: the peer has its answer and is being closed
        if not self.admitted:
            # Answered once the request has begun: a client that reads an answer and an
            # end of stream before it has sent its request takes them for a broken line.
            self._refuse(http.HTTPStatus.SERVICE_UNAVAILABLE, self.owner.config.over_cap_message())
            return
        if not self.upgraded:
            self.unauthenticated_bytes += len(data)
            limit = self.owner.config.max_unauthenticated_bytes
            if self.unauthenticated_bytes > limit:
                self._refuse(
                    http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"the opening handshake may not exceed {limit} bytes",
                )
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            self.admitted = False
            self.owner.gate.release()
        super().connection_lost(exc)

    def _refuse(self, status: http.HTTPStatus, text: str) -> None:
        """Answer in plain HTTP, half-close, and drop the connection ``LINGER_S`` later
        (what the peer sends until then is discarded)."""
        self.refused = True
        body = (text + "\n").encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: text/plain; "
            f"charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        transport = self.transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(head.encode() + body)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_S, transport.abort)


class OpenpiServer:
    """Serve ``policy`` over openpi's websocket protocol with ``config``; ``await start()``,
    then ``port``, ``await close()`` (as ``policy.server.PolicyServer``)."""

    def __init__(self, policy: ChunkPolicy, config: ServerConfig) -> None:
        self.config = config
        self.gate = ConnectionGate(config.max_connections)
        self.stats = ServerStats()
        self._policy = policy
        self._slot = InferenceSlot(policy, config.infer_timeout_s)
        self._server: Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        class Connection(_GatedConnection):  # counted against this server's gate
            pass

        Connection.owner = self
        self._server = await serve(
            self._handler,
            self.config.host,
            self.config.port,
            compression=None,
            process_request=self._process_request,
            open_timeout=self.config.auth_timeout_s,
            max_size=MAX_FRAME_BYTES,
            max_queue=2,  # frames buffered per connection while the model computes
            create_connection=Connection,
        )
        log.info(
            "openpi policy server %s on %s:%d", self._policy.version, self.config.host, self.port
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Health check, then the token, before the upgrade (and before any message)."""
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if not self.config.token_matches(bearer_token(request.headers.get("Authorization"))):
            self.stats.unauthorized += 1
            return connection.respond(
                http.HTTPStatus.UNAUTHORIZED,
                "missing or wrong token: send the header 'Authorization: Bearer <token>'\n",
            )
        if isinstance(connection, _GatedConnection):
            connection.upgraded = True
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        await ws.send(packb(metadata(self._policy)))
        prev_total_ms: float | None = None
        while True:
            try:
                data = await asyncio.wait_for(ws.recv(), self.config.read_timeout_s)
            except TimeoutError:
                await ws.close(reason=f"idle for {self.config.read_timeout_s} s")
                return
            except websockets.ConnectionClosed:
                return
            t0 = time.monotonic()
            reply = await self._answer(data, prev_total_ms)
            await ws.send(reply)
            prev_total_ms = (time.monotonic() - t0) * 1e3

    async def _answer(self, data: str | bytes, prev_total_ms: float | None) -> bytes | str:
        """msgpack bytes with the chunk, or a text message saying why there is none."""
        self.stats.requests += 1
        t0 = time.monotonic()
        try:
            if isinstance(data, str):
                raise WireError(
                    "bad_message", "send binary msgpack maps (openpi's msgpack_numpy), not text"
                )
            req = parse_request(unpackb(data))
            if req.obs is None:
                await self._slot.reset()
                return packb({"reset": True})
            actions, model_ms = await self._slot.infer(req.obs, req.prefix)
        except WireError as exc:
            self.stats.errors += 1
            return f"{exc.code}: {exc}"
        except PolicyError as exc:
            self.stats.errors += 1
            return f"policy_error: {exc}"
        infer_ms = (time.monotonic() - t0) * 1e3
        return packb(
            reply_message(actions, self._policy.version, infer_ms, model_ms, prev_total_ms)
        )
