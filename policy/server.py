"""The policy server: answers observations with action chunks over the ``policy.wire`` format.

It serves any ``ChunkPolicy`` (usually the local torch model, loaded by the CLI) and never
imports torch itself. Inference runs in one worker thread, one request at a time
(``InferenceSlot``), so the event loop keeps answering ``hello`` and refusing bad frames
while the model computes. ``policy.openpi_server`` serves the same policy over openpi's
websocket protocol with the same configuration and limits.

Security, for both protocols (``ServerConfig``):

* binds loopback unless told otherwise, and refuses to start on any other address
  without a token;
* with a token, a connection proves it before the server reads or buffers any payload:
  here the first frame must be a ``hello`` carrying it, at most ``MAX_HELLO_BYTES``;
  a larger or different first frame is refused unread and the connection closed;
* a new connection has ``auth_timeout_s`` to authenticate and may send at most
  ``max_unauthenticated_bytes`` before it has;
* at most ``max_connections`` connections at once (``ConnectionGate``); one over the cap
  is told so and closed before anything is read from it.

Worst case held for connections that never authenticate: ``max_connections`` x
``max_unauthenticated_bytes`` (16 x 16 KiB by default), each for ``auth_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from policy.base import PolicyError, run_metadata
from policy.wire import (
    HEADER,
    MAX_HELLO_BYTES,
    WireError,
    WireRequest,
    error_reply,
    frame,
    frame_length,
    parse_request,
    refuse_pickle,
    unpack,
)
from robot.chunk_policy import ChunkPolicy
from robot.net import is_loopback
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM, Observation

log = logging.getLogger(__name__)


class ServerConfig(BaseModel):
    """Where and how the server listens, and its limits. A non-loopback host needs a token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: str | None = Field(default=None, min_length=16, max_length=500)
    read_timeout_s: float = Field(default=300.0, gt=0, description="idle connection limit")
    infer_timeout_s: float = Field(default=30.0, gt=0, description="one inference's limit")
    max_connections: int = Field(default=16, ge=1, le=1024, description="open at once")
    auth_timeout_s: float = Field(
        default=10.0, gt=0, description="time a new connection has to authenticate"
    )
    max_unauthenticated_bytes: int = Field(
        default=16 * 1024,
        ge=MAX_HELLO_BYTES + HEADER.size,
        le=1024 * 1024,
        description="what a connection may send before it has authenticated",
    )

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerConfig:
        if not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"binding {self.host} exposes the policy beyond this machine: set a token "
                "(at least 16 characters) in INTERN_POLICY_TOKEN or a --token-file, "
                "or bind 127.0.0.1"
            )
        return self

    def token_matches(self, given: str | None) -> bool:
        """True when no token is set, or ``given`` is it (compared in constant time)."""
        if not self.token:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def over_cap_message(self) -> str:
        return (
            f"too many connections: this policy server takes at most {self.max_connections} "
            "at once; close an idle client or start the server with a higher "
            "--max-connections"
        )


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    refused_connections: int = 0  # over the connection cap
    unauthorized: int = 0  # connections closed for a missing or wrong token


class ConnectionGate:
    """Counts open connections against ``limit``; ``admit()`` is False over the cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def admit(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class InferenceSlot:
    """The served policy, one call at a time in a worker thread, each within a deadline."""

    def __init__(self, policy: ChunkPolicy, timeout_s: float) -> None:
        self.policy = policy
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()

    async def infer(self, obs: Observation, prefix: np.ndarray | None) -> tuple[np.ndarray, float]:
        """The chunk and the model's milliseconds. ``PolicyError`` past the deadline;
        ``WireError('bad_request')`` when the policy refuses the input."""
        async with self._lock:
            t0 = time.perf_counter()
            try:
                actions = await asyncio.wait_for(
                    asyncio.to_thread(self.policy.infer, obs, prefix), self._timeout_s
                )
            except TimeoutError:
                raise PolicyError(f"inference took longer than {self._timeout_s} s") from None
            except ValueError as exc:
                raise WireError("bad_request", str(exc)) from exc
            return actions, (time.perf_counter() - t0) * 1e3

    async def reset(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self.policy.reset)


LINGER_S = 2.0  # how long a refused peer's bytes are discarded so it can read why


async def refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: dict[str, Any]
) -> None:
    """Send ``reply``, then discard what the peer still sends (holding none of it) until
    it closes or ``LINGER_S`` passes: closing on unread bytes would reset the connection
    and lose the reply before the peer has read it."""
    writer.write(frame(reply))
    with contextlib.suppress(ConnectionError, TimeoutError):
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_S):
            while await reader.read(64 * 1024):
                pass


async def _read(reader: asyncio.StreamReader, n: int, timeout_s: float) -> bytes | None:
    """``n`` bytes, or None when the peer closes or stays silent for ``timeout_s``."""
    try:
        return await asyncio.wait_for(reader.readexactly(n), timeout_s)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return None


class PolicyServer:
    """Serve ``policy`` with ``config``; ``await start()``, then ``port``, ``await close()``."""

    def __init__(self, policy: ChunkPolicy, config: ServerConfig) -> None:
        self._policy = policy
        self._config = config
        self._server: asyncio.Server | None = None
        self._slot = InferenceSlot(policy, config.infer_timeout_s)
        self.gate = ConnectionGate(config.max_connections)
        self.stats = ServerStats()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._config.host, self._config.port
        )
        log.info("policy server %s on %s:%d", self._policy.version, self._config.host, self.port)

    async def close(self) -> None:
        """Stop listening and end the open connections."""
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        admitted = self.gate.admit()
        try:
            if not admitted:
                self.stats.refused_connections += 1
                msg = self._config.over_cap_message()
                await refuse(reader, writer, error_reply("too_many_connections", msg))
                return
            authenticated = self._config.token is None
            while True:
                body = await self._next_body(reader, writer, authenticated)
                if body is None:
                    return
                if not authenticated:
                    if not await self._authenticate(body, reader, writer):
                        return
                    authenticated = True
                    body = None
                await self._send(writer, await self._answer(body))
        except ConnectionError:
            return
        finally:
            if admitted:
                self.gate.release()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _next_body(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authenticated: bool
    ) -> bytes | None:
        """The next frame's body, or None when the connection is to close (the peer left,
        timed out, or sent a frame that cannot be read: it has been told why)."""
        cfg = self._config
        timeout = cfg.read_timeout_s if authenticated else cfg.auth_timeout_s
        header = await _read(reader, HEADER.size, timeout)
        if header is None:
            return None
        try:
            # A bare pickle stream starts with the PROTO opcode; read as a length it
            # would only look oversized, so name it for what it is.
            refuse_pickle(header)
            n = frame_length(header)
            # Within max_unauthenticated_bytes, which ServerConfig keeps above a hello.
            if not authenticated and n > MAX_HELLO_BYTES:
                self.stats.unauthorized += 1
                raise WireError(
                    "unauthorized",
                    f"this server needs a token: the first frame must be a hello carrying "
                    f"it, at most {MAX_HELLO_BYTES} bytes (this one announces {n})",
                )
        except WireError as exc:
            # The length is untrustworthy or unwelcome: the stream cannot be resynchronised.
            await refuse(reader, writer, error_reply(exc.code, str(exc)))
            return None
        return await _read(reader, n, timeout)

    async def _authenticate(
        self, body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Check a connection's first frame: a hello with the token. On failure the peer
        is told why and False returned."""
        try:
            req = parse_request(unpack(body))
            if req.op != "hello":
                raise WireError(
                    "unauthorized", f"send a hello with the token first, not {req.op!r}"
                )
            if not self._config.token_matches(req.token):
                raise WireError("unauthorized", "missing or wrong token")
        except WireError as exc:
            if exc.code == "unauthorized":
                self.stats.unauthorized += 1
            await refuse(reader, writer, error_reply(exc.code, str(exc)))
            return False
        return True

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(frame(reply))
        await writer.drain()

    async def _answer(self, body: bytes | None) -> dict[str, Any]:
        """The reply to one frame (``None``: the hello that authenticated the connection)."""
        self.stats.requests += 1
        t0 = time.perf_counter()
        try:
            req = WireRequest(op="hello") if body is None else parse_request(unpack(body))
            return await self._dispatch(req, t0)
        except WireError as exc:
            self.stats.errors += 1
            return error_reply(exc.code, str(exc))
        except PolicyError as exc:
            self.stats.errors += 1
            return error_reply("policy_error", str(exc))

    async def _dispatch(self, req: WireRequest, t0: float) -> dict[str, Any]:
        version = self._policy.version
        if req.op == "hello":
            return {
                "ok": True,
                "version": version,
                "action_dim": ACTION_DIM,
                "state_dim": STATE_DIM,
                "cameras": list(CAMERAS),
                "image_size": IMAGE_SIZE,
                **run_metadata(self._policy),
            }
        if req.op == "reset":
            await self._slot.reset()
            return {"ok": True, "version": version}
        assert req.obs is not None
        actions, model_ms = await self._slot.infer(req.obs.to_observation(), req.prefix)
        return {
            "ok": True,
            "version": version,
            "actions": actions,
            "timing": {"model_ms": model_ms, "total_ms": (time.perf_counter() - t0) * 1e3},
        }
